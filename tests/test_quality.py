"""Perceptual quality of TTS, offline: DNSMOS and speaker similarity order real sources sensibly,
and the TTS suite judges, reports and grades with them."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers import FAKE_MODEL_CONFTEST, REPO, write_manifest

pytest.importorskip("speechmos", reason="pip install 'pytest-speechlab[quality]'")
pytest.importorskip("resemblyzer", reason="pip install 'pytest-speechlab[quality]'")

from pytest_speechlab.metrics.quality import centroid, mos, similarity, speaker_embedding  # noqa: E402

FIXTURES = REPO / "fixtures"


def clips(folder: str, pattern: str, n: int):
    out = []
    for path in sorted((FIXTURES / folder).glob(pattern))[:n]:
        x, rate = sf.read(path, dtype="float32")
        out.append((x, rate))
    return out


def test_mos_and_speaker_similarity_order_voices_and_noise_sensibly():
    piper = clips("speech", "s1*.flac", 4)  # the packaged piper voice
    espeak = clips("multilingual", "de*.flac", 2) + clips("multilingual", "es*.flac", 2)  # eSpeak NG's formant voice
    noise = clips("nonspeech", "*noise*.flac", 3)
    ovrl = {name: np.mean([mos(x, r)["ovrl"] for x, r in group])
            for name, group in (("piper", piper), ("espeak", espeak), ("noise", noise))}
    assert ovrl["piper"] > ovrl["espeak"] > ovrl["noise"], ovrl  # measured 3.3 > 2.6 > 1.3
    assert ovrl["noise"] < 2.0
    assert mos(np.zeros(16000, np.float32), 16000) is None  # silence is not scored (DNSMOS rates it above noise)

    voices = [speaker_embedding(x, r) for x, r in piper]
    same = [similarity(v, centroid(voices[:i] + voices[i + 1:])) for i, v in enumerate(voices)]
    other = [similarity(speaker_embedding(x, r), centroid(voices)) for x, r in espeak]
    assert min(same) > 0.8 > max(other), (same, other)  # measured about 0.94 against 0.55


QUALITY_FAKES = '''

import soundfile as _sf


class VoiceTTS:
    """A real voice: the piper speech fixtures, one per text."""

    def __init__(self, params):
        import pathlib
        self.files = sorted(pathlib.Path(params["folder"]).glob("s1*.flac"))

    def synthesize(self, text):
        import numpy as np
        from pytest_speechlab import Audio
        samples, rate = _sf.read(self.files[len(text) % len(self.files)], dtype="float32")
        return Audio(samples, rate)


class NoiseTTS:
    def synthesize(self, text):
        import numpy as np
        from pytest_speechlab import Audio
        rng = np.random.default_rng(len(text))
        return Audio((0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)


@hookimpl(specname="speechlab_register_models")
def register_voices(register):
    register("fake/voice", task="tts", load=VoiceTTS, backend="fake-tts", params={"folder": FOLDER})
    register("fake/noise-tts", task="tts", load=lambda p: NoiseTTS(), backend="fake-tts")
'''


def test_the_tts_suite_judges_and_grades_with_mos_and_speaker_similarity(speechlab_project):
    speechlab_project.makeconftest(FAKE_MODEL_CONFTEST + QUALITY_FAKES.replace("FOLDER", repr(str(FIXTURES / "speech"))))
    write_manifest(speechlab_project.path / "texts.jsonl", [
        {"id": "a", "text": "The cat sat on the mat."}, {"id": "b", "text": "Hello world!"},
        {"id": "c", "text": "A quick brown fox jumps."}])
    with open(speechlab_project.path / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.speechlab.tts]\njudge = "fake/perfect"\ntexts = ["texts.jsonl"]\n'
                 f'reference_speaker = "{FIXTURES / "speech" / "manifest.jsonl"}"\n')
    result = speechlab_project.runpytest("suites/test_tts.py", "--speechlab-no-db", "-k", "mos or speaker",
                                         "--speechlab-model", "fake/voice", "--speechlab-model", "fake/noise-tts",
                                         "--speechlab-markdown", "card.md")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "FAILED suites/test_tts.py::test_tts_mos[fake/noise-tts-texts.jsonl]" in out
    assert "FAILED suites/test_tts.py::test_tts_speaker_similarity[fake/noise-tts-texts.jsonl]" in out
    assert "mean DNSMOS OVRL of fake/noise-tts on texts.jsonl:" in out and "< mos 2.5" in out
    voice_line = next(line for line in out.splitlines() if line.startswith("  perceptual quality over 3 clips")
                      and "speaker similarity 0.9" in line)
    assert "DNSMOS OVRL 3." in voice_line and "manifest.jsonl)" in voice_line
    grade = next(line for line in out.splitlines() if line.startswith("  fake/noise-tts: "))
    assert "DNSMOS OVRL 1.0" in grade and "< 2.5" in grade and "speaker similarity 0.4" in grade  # in its grade

    (speechlab_project.path / "pyproject.toml").write_text(
        (speechlab_project.path / "pyproject.toml").read_text().replace('judge = "fake/perfect"',
                                                                         'judge = "fake/perfect"\nquality = false'))
    off = speechlab_project.runpytest("suites/test_tts.py", "--speechlab-no-db", "-k", "mos or speaker",
                                      "--speechlab-model", "fake/voice")
    assert off.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # both quality tests deselected, not failed or skipped
