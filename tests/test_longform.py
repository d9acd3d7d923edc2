"""Long-form audio: the long-form fixture, segments read alone, silences measured, the detectors
that matter at length, the long-form checks, and the suite on the 10-minute fixture and a 3-minute
build with each Whisper backend (real weights)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from helpers import REPO
from pytest_speechlab import check_long_form
from pytest_speechlab._assertions import SpeechlabAssertionError, longest_deleted_run
from pytest_speechlab._audio import AudioError, RawAudio, read_audio, silent_spans
from pytest_speechlab._builtin import fixtures_dir
from pytest_speechlab._longform import build_longform
from pytest_speechlab._types import Output, Segment, Transcript, Utterance
from pytest_speechlab.engine.cache import OutputCache
from pytest_speechlab.metrics.wer import evaluate

RATE = 16000


def test_the_long_form_fixture_is_built_deterministically(tmp_path):
    first = build_longform(tmp_path / "a", fixtures_dir(), minutes=2.0, name="two")
    second = build_longform(tmp_path / "b", fixtures_dir(), minutes=2.0, name="two")
    assert (tmp_path / "a" / "two.flac").read_bytes() == (tmp_path / "b" / "two.flac").read_bytes()
    (entry,) = [json.loads(line) for line in first.read_text().splitlines()]
    assert entry == json.loads(second.read_text())
    assert entry["duration"] >= 120 and entry["language"] == "en" and entry["kind"] == "speech"
    assert "silence (hiss at -70 dBFS) " in entry["description"] and "music" in entry["description"]
    speech = [json.loads(line)["text"] for line in (fixtures_dir() / "speech" / "manifest.jsonl").read_text().splitlines()]
    assert entry["text"].startswith(tuple(speech))  # fixture sentences, in order
    spans = silent_spans(read_audio(str(tmp_path / "a" / "two.flac")))
    assert any(b - a >= 59 for a, b in spans), spans  # the minute of silence is measured as such


def test_a_segment_is_read_alone_and_an_offset_past_the_end_is_an_input_error(tmp_path):
    samples = np.concatenate([np.full(RATE, 0.1, np.float32), np.full(RATE, 0.2, np.float32)])
    sf.write(tmp_path / "a.wav", samples, RATE, subtype="FLOAT")
    part = read_audio(str(tmp_path / "a.wav"), offset=1.0, duration=0.5)
    assert part.duration == 0.5 and np.allclose(part.samples, 0.2)
    assert read_audio(str(tmp_path / "a.wav"), offset=0.5).duration == 1.5
    with pytest.raises(AudioError, match=r"offset 3 s is at or past the end of the audio \(2.00 s\)"):
        read_audio(str(tmp_path / "a.wav"), offset=3.0)


def test_silent_spans_find_long_quiet_stretches_only():
    rng = np.random.default_rng(1)
    loud = lambda s: 0.1 * rng.standard_normal(int(s * RATE)).astype(np.float32)  # noqa: E731
    quiet = lambda s: 1e-4 * rng.standard_normal(int(s * RATE)).astype(np.float32)  # noqa: E731
    audio = RawAudio(np.concatenate([loud(1), quiet(5), loud(1), quiet(1), loud(1), quiet(2.5)]), RATE)
    spans = silent_spans(audio)
    assert len(spans) == 2 and spans[0][1] - spans[0][0] == pytest.approx(5, abs=0.1)
    assert spans[1][1] - spans[1][0] == pytest.approx(2.5, abs=0.1)  # the 1 s pause is too short
    stereo = RawAudio(np.stack([audio.samples, audio.samples], axis=1), RATE)
    assert silent_spans(stereo) == spans


def long_output(segments, silences=(), reference="a b c", seconds=120.0):
    utt = Utterance("long", "x.wav", reference, language="en")
    text = " ".join(s[2] for s in segments)
    return Output(utt, Transcript(text, tuple(Segment(a, b, t) for a, b, t in segments)), 1.0, seconds,
                  silences=tuple(silences))


def kinds(output) -> list[str]:
    result = evaluate("m", "d", [output])
    return [f.kind for f in result.utterances[0].findings]


def test_text_wholly_inside_a_long_silence_is_flagged_and_a_stretched_segment_is_not():
    silence = [(60.0, 120.0)]
    assert "text_in_silence" in kinds(long_output([(0, 5, "a b c"), (70, 71, "thank you")], silence))
    # a segment whose end runs over the silence after its words, or that opens early before words
    # following a silence: timestamps, not invented words
    assert "text_in_silence" not in kinds(long_output([(58, 75, "a b c")], silence))
    assert "text_in_silence" not in kinds(long_output([(100, 125, "a b c")], silence))
    assert "text_in_silence" not in kinds(long_output([(70, 71, "a b c")], [(69.0, 71.5)]))  # too short a silence


def test_repeated_segments_are_flagged_from_three_in_a_row():
    same = [(30 + i, 31 + i, "Thank you very much.") for i in range(3)]
    assert "repeated_segment" in kinds(long_output([(0, 5, "a b c"), *same]))
    assert "repeated_segment" not in kinds(long_output([(0, 5, "a b c"), *same[:2]]))


def test_long_prose_is_not_a_loop_but_a_loop_inside_it_is():
    sentences = [line["text"] for line in map(json.loads, (fixtures_dir() / "speech" / "manifest.jsonl").read_text().splitlines())]
    segments = [(i * 4.0, i * 4.0 + 4, s) for i, s in enumerate(sentences * 3)]  # 102 segments over 408 s
    reference = " ".join(sentences * 3)
    assert "repetition" not in kinds(long_output(segments, reference=reference, seconds=410))
    # one transcript for the whole recording (no timestamps): not judged as one 30 s window
    assert "repetition" not in kinds(long_output([(0, 408, " ".join(sentences * 3))], reference=reference, seconds=410))
    loop = segments[:10] + [(40 + i, 41 + i, "the the the the the the") for i in range(5)]
    assert "repetition" in kinds(long_output(loop, reference=reference, seconds=410))


def test_silences_are_kept_with_a_cached_output():
    class FakeStore:
        rows: list = []

        def outputs(self, keys):
            return {r["key"]: r for r in self.rows if r["key"] in keys}

    output = long_output([(0, 5, "a b c")], [(60.0, 120.0)])
    cache = OutputCache(FakeStore(), "on", "run")
    FakeStore.rows = cache.rows("m", output, ["k"])
    hit = cache.lookup({"long": ["k"]}, [output.utterance])["long"]
    assert hit.silences == ((60.0, 120.0),) and hit.transcript.text == "a b c"


def test_check_long_form_names_a_dropped_stretch_and_the_mode():
    word = lambda i: "w" + "".join("abcdefghij"[int(d)] for d in f"{i:03d}")  # noqa: E731 - digits are split by the normalizer
    reference = " ".join(word(i) for i in range(200))
    kept = " ".join(word(i) for i in range(200) if not 100 <= i < 150)
    result = evaluate("m", "d", [long_output([(0, 100, kept)], reference=reference)])
    result.model_info = {"long_form": {"mode": "sequential", "window_s": 30}}
    assert longest_deleted_run(result.utterances[0]) == (50, 100)
    with pytest.raises(SpeechlabAssertionError) as failed:
        check_long_form(result, 30)
    assert "50 consecutive reference words left out from word 100 of 200 ('wbaa wbab" in str(failed.value)
    assert "mode sequential, window_s 30" in str(failed.value)
    check_long_form(result, 60)
    short = evaluate("m", "d", [long_output([(0, 5, "a b c")], seconds=10)])
    with pytest.raises(SpeechlabAssertionError, match="no scored recording of 60 s or more"):
        check_long_form(short, 30)


def test_the_long_form_suite_is_deselected_without_a_long_recording(speechlab_project):
    speechlab_project.path.joinpath("suites", "test_longform.py").write_text((REPO / "suites" / "test_longform.py").read_text())
    result = speechlab_project.runpytest("suites/test_longform.py", "--speechlab-no-db")
    result.assert_outcomes()
    assert "2 deselected" in result.stdout.str()


VARIANTS = """
[tool.speechlab.models.tiny-vad-nocond]
model = "faster-whisper/tiny.en"
vad_filter = true
condition_on_previous_text = false

[tool.speechlab.models.tiny-first5]
model = "faster-whisper/tiny.en"
clip_timestamps = "0,300"

[tool.speechlab.models.transformers-chunked]
model = "transformers/tiny.en"
long_form = "chunked"

# the 3-minute build is 7 windows of 30 s: under the default minimum sample (10) its WER is "too few
# to judge"; judged here (the 10-minute fixture is 21 windows)
[tool.speechlab.min_samples]
wer = 7
"""


def run_longform_suite(pytester, tmp_path, dataset: str, models: list[str]):
    pytester.makepyprojecttoml(VARIANTS)
    suites = pytester.mkdir("suites")
    (suites / "test_longform.py").write_text((REPO / "suites" / "test_longform.py").read_text())
    pytester._monkeypatch.setenv("SPEECHLAB_CACHE_DIR", str(tmp_path / "cache"))
    result = pytester.runpytest_subprocess(
        "suites", "--speechlab-no-db", "--speechlab-dataset", dataset, "-p", "no:cacheprovider", "-rA",
        *(arg for m in models for arg in ("--speechlab-model", m)))
    out = result.stdout.str()
    verdict = {m: ("PASSED" if f"PASSED suites/test_longform.py::test_long_recording_is_decoded_whole_without_loops[{m}-"
                   in out else "FAILED") for m in models}
    return out, verdict


def test_the_long_form_suite_on_the_ten_minute_fixture_with_faster_whisper(pytester, tmp_path):
    """Real weights, the built-in 10-minute fixture. faster-whisper sequential with VAD and without
    conditioning on the previous text decodes it whole. A deployment that decodes only the first five
    minutes (``clip_timestamps``) loses the second half, and the suite names the stretch and the mode.
    (What tiny.en's default decoding does here differs between machines, so it is not asserted: on the
    CI machine of 2026-12-02 08:00 it wrote "Thank you for watching." into the minute of silence and
    VAD alone decoded the recording whole; on a later AMD EPYC the default wrote one word there, not
    flagged, and VAD alone left out 41 words from word 148. The README's long-form table has both.)"""
    out, verdict = run_longform_suite(pytester, tmp_path, "speechlab/longform", ["tiny-vad-nocond", "tiny-first5"])
    assert verdict == {"tiny-vad-nocond": "PASSED", "tiny-first5": "FAILED"}, out
    assert re.search(r"longform_10min \(602 s\): \d+ consecutive reference words left out from word \d+ of 1257", out), out
    assert "long-form decoding of tiny-first5 on speechlab/longform (mode sequential, window_s 30, by WhisperModel.transcribe" in out
    assert "PASSED suites/test_longform.py::test_long_recording_wer[tiny-vad-nocond-" in out  # WER under 0.2
    assert "FAILED suites/test_longform.py::test_long_recording_wer[tiny-first5-" in out  # half the words gone


def test_the_long_form_suite_on_a_three_minute_build_with_the_torch_backends(pytester, tmp_path):
    """openai-whisper sequential decodes a 3-minute build of the long-form fixture (a minute of
    silence from 93.7 s, music from 153.7 s) whole. transformers' chunked pipeline keeps the words
    (WER under 0.2) but puts 13 segments after the end of the audio (the last ending at 193.9 s of
    181.3 s): its merged chunk timestamps run past a recording this short; the suite says so."""
    pytest.importorskip("whisper", reason="openai-whisper is not installed (README: the torch backends)")
    pytest.importorskip("speechlab_transformers_whisper", reason="the transformers plugin is not installed")
    manifest = build_longform(tmp_path / "three", fixtures_dir(), minutes=3.0, name="three")
    out, verdict = run_longform_suite(pytester, tmp_path, str(manifest), ["openai-whisper/tiny.en", "transformers-chunked"])
    assert verdict == {"openai-whisper/tiny.en": "PASSED", "transformers-chunked": "FAILED"}, out
    assert "past_end: 13 segment(s) with text after the audio ends (181.31 s), the last ending at 193.94 s" in out
    assert "mode chunked, window_s 30, stride_s 5, by the automatic-speech-recognition pipeline" in out
    assert out.count("PASSED suites/test_longform.py::test_long_recording_wer") == 2
