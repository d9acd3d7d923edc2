"""The first-party backends on real packaged weights and the project's generated fixtures.

Both plugins are installed by the README's setup and by .ci/run, so these run there.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_speechlab import (
    ModelPool,
    Runner,
    build_registry,
    evaluate,
    get_normalizer,
    grade_model,
    load_dataset,
    make_plugin_manager,
)
from helpers import SMALL_SAMPLES
from pytest_speechlab._builtin import fixtures_dir
from pytest_speechlab.metrics.hallucination import KINDS

REAL_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "realspeech-dev" / "manifest.jsonl"


@pytest.fixture(scope="module")
def registry():
    return build_registry(make_plugin_manager())


@pytest.fixture(scope="module")
def pool():
    pool = ModelPool()
    yield pool
    pool.close()


def subset(manifest: Path, ids: list[str]):
    dataset = load_dataset(manifest)
    dataset.utterances = [u for u in dataset.utterances if u.id in ids]
    assert len(dataset.utterances) == len(ids)
    return dataset


SPEECH = ["s03_turn_left", "s09_bridge", "s20_letter", "s33_speech_then_silence"]


@pytest.mark.parametrize("name, max_wer", [("faster-whisper/tiny.en", 0.10), ("pocketsphinx", 0.45)])
def test_backend_transcribes_fixtures_and_reports_identity(registry, pool, name, max_wer):
    loaded = pool.get(registry.model(name))
    dataset = subset(fixtures_dir() / "speech" / "manifest.jsonl", SPEECH)
    outputs = Runner().run(loaded, dataset.utterances)
    result = evaluate(name, "fixtures", outputs, get_normalizer())
    assert result.errors == []
    assert result.wer is not None and result.wer <= max_wer, [(u.utterance.id, u.hypothesis) for u in result.scored]
    assert all(u.processing_seconds > 0 for u in result.utterances)
    assert result.rtf is not None and result.rtf > 0
    info = loaded.info
    assert info["weights_sha256"].startswith("sha256:") and info["backend_version"]
    assert info["languages"] == ["en"] and info["threads"] >= 1
    assert loaded.warmed_up
    # segments carry times inside the clip for speech
    assert all(s.start < s.end for u in result.utterances for s in u.transcript.segments)


def test_tiny_en_hallucinates_on_digital_silence_and_the_vad_variant_does_not(registry, pool):
    registry.add_variants({"tiny-vad-test": {"model": "faster-whisper/tiny.en", "vad_filter": True}}, "test")
    silence = subset(fixtures_dir() / "nonspeech" / "manifest.jsonl", ["silence_10s"])
    speech = subset(fixtures_dir() / "speech" / "manifest.jsonl", SPEECH)
    grades = {}
    for name in ("faster-whisper/tiny.en", "tiny-vad-test"):
        loaded = pool.get(registry.model(name))
        results = [evaluate(name, ds.name, Runner().run(loaded, ds.utterances), get_normalizer(), min_samples=SMALL_SAMPLES)
                   for ds in (speech, silence)]  # one silent clip: judged here to test the cap itself
        grades[name] = grade_model(name, results)
        (u,) = results[1].utterances
        if name == "tiny-vad-test":
            assert loaded.info["decode"]["vad_filter"] is True
            assert u.hypothesis == "" and u.findings == []
        else:
            # RESOURCES.md: " You", segment 0-2 s, no_speech_prob 0.935
            assert {"nonspeech_text", "known_phrase"} <= {f.kind for f in u.findings}
            assert all(s.no_speech_prob > 0.6 for s in u.transcript.segments)
    assert grades["faster-whisper/tiny.en"].grade == "C"
    reason = grades["faster-whisper/tiny.en"].reason  # what it invents on silence is this machine's; that it does is not
    assert reason.startswith("hallucinated on 1/1 [0.21-1.00] non-speech clips: silence_10s '")
    assert grades["tiny-vad-test"].grade in ("A+", "A")


def test_every_detector_fires_on_the_project_fixtures_with_a_real_model(registry, pool):
    # Greedy decoding on one thread is deterministic; the silence gate off lets low-confidence
    # segments through (faster-whisper drops them itself by default).
    registry.add_variants({"tiny-raw": {"model": "faster-whisper/tiny.en", "temperature": 0.0,
                                        "no_speech_threshold": 1.0, "cpu_threads": 1}}, "test")
    loaded = pool.get(registry.model("tiny-raw"))
    fired = set()
    for folder in ("nonspeech", "stress"):
        dataset = load_dataset(fixtures_dir() / folder / "manifest.jsonl")
        result = evaluate("tiny-raw", folder, Runner().run(loaded, dataset.utterances), get_normalizer())
        fired |= {f.kind for u in result.utterances for f in u.findings}
    # wrong_language: the multilingual fixtures with a multilingual model left to identify the
    # language (test_multilingual_fixtures_...); repeated_segment and text_in_silence: the long-form
    # fixture (test_longform.py)
    assert fired >= set(KINDS) - {"wrong_language", "repeated_segment", "text_in_silence"}, fired


ONE_PER_LANGUAGE = ["de1_zug", "es1_mercado", "fr2_gare", "it1_mare", "pt2_cidade", "ru2_pogoda", "hi1_pani",
                    "zh2_cha", "ja1_arigatou"]


@pytest.fixture(scope="module")
def multilingual_results(registry, pool):
    """faster-whisper/base on the eSpeak NG multilingual fixtures, one clip per language, left to
    identify each language and told it (language = "dataset"). All 18 clips took 215 s in a fresh-clone
    .ci/run, most of it temperature fallback on the ones the model loops on; these nine 48 s, both
    model loads included."""
    registry.add_variants({"base-told-test": {"model": "faster-whisper/base", "language": "dataset"}}, "test")
    dataset = subset(fixtures_dir() / "multilingual" / "manifest.jsonl", ONE_PER_LANGUAGE)
    results = {}
    for name in ("faster-whisper/base", "base-told-test"):
        loaded = pool.get(registry.model(name))
        results[name] = evaluate(name, "multilingual", Runner().run(loaded, dataset.utterances))
    return results


def test_multilingual_fixtures_one_row_per_language_with_and_without_the_language_hint(multilingual_results):
    untold, told = multilingual_results["faster-whisper/base"], multilingual_results["base-told-test"]
    for result in (untold, told):
        assert list(result.languages) == ["de", "es", "fr", "hi", "it", "ja", "pt", "ru", "zh"]
        assert {lang: r.metric for lang, r in result.languages.items() if r.metric == "cer"} == {"ja": "cer", "zh": "cer"}
        # one clip per language: each listed "too few to judge", no macro average (default minimum 10)
        assert result.headline == ("macro", None, None) and result.wer is None
        assert all(r.too_few == "too few to judge (n = 1 < 10)" and r.ci is None for r in result.languages.values())
    # formant speech in foreign languages: left alone, base mistakes about half the languages
    # (measured 4 of 9: Hebrew for German, Italian for Spanish, Czech, Thai), told, it transcribes
    # in the right one and does better
    assert told.language_id["correct"] == 9
    assert untold.language_id["correct"] < 8
    def mean(result):
        return sum(r.rate for r in result.languages.values()) / len(result.languages)

    assert mean(told) < mean(untold)  # measured 0.322 against 0.603
    wrong = [u for u in untold.utterances if any(f.kind == "wrong_language" for f in u.findings)]
    assert len(wrong) >= 3 and not any(f.kind == "wrong_language" for u in told.utterances for f in u.findings)


def test_slices_by_gender_and_accent_on_a_common_voice_style_tsv(registry, pool):
    """tiny.en on the accents fixture read as a Common Voice release (validated.tsv): its gender and
    accents columns are slice fields; every slice of 24 and 12 is judged, none missing, and the
    figures of each field cover every scored utterance (measured: gender p = 0.71, accents 0.63)."""
    from pytest_speechlab.metrics.slices import slice_report

    dataset = load_dataset(registry.datasets["speechlab/accents-cv"].path)
    result = evaluate("faster-whisper/tiny.en", "accents-cv", Runner().run(pool.get(registry.model("faster-whisper/tiny.en")),
                                                                          dataset.utterances))
    gender, accents = slice_report(result.scored, ["gender", "accents"])
    assert sorted(len(s.utterances) for s in gender.slices) == [24, 24] and gender.missing == 0
    assert sorted(len(s.utterances) for s in accents.slices) == [12] * 4 and accents.missing == 0
    assert all(s.too_few is None and 0 <= s.rate < 1 for f in (gender, accents) for s in f.slices)
    assert gender.family == accents.family == 2 and 0 < gender.p_value <= gender.p_adjusted <= 1
    assert accents.gap is not None and accents.worst.value != accents.best.value


@pytest.mark.skipif(not REAL_SET.is_file(), reason=f"real recorded set not present at {REAL_SET}")
def test_tiny_en_on_real_recorded_speech(registry, pool):
    loaded = pool.get(registry.model("faster-whisper/tiny.en"))
    dataset = load_dataset(REAL_SET)
    result = evaluate("tiny.en", "real", Runner().run(loaded, dataset.utterances), get_normalizer())
    assert result.errors == []
    assert len(result.scored) == sum(1 for line in REAL_SET.open() if json.loads(line)["kind"] == "speech")
    assert result.wer < 0.10  # measured 0.047 with the default normalizer
    # no detector flags the correct transcripts of the 27 real speech clips
    assert [u.utterance.id for u in result.flagged if u.utterance.kind == "speech"] == []
