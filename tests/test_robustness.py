"""Perturbed datasets, the robustness suite and metamorphic properties (with fake models whose
weakness the tests control)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers import FAKE_MODEL_CONFTEST, write_audio, write_manifest
from pytest_speechlab import SpeechlabError, apply_chain, chain_label, ladder, parse_chain
from pytest_speechlab._audio import RawAudio, to_model_input
from pytest_speechlab._config import load_config
from pytest_speechlab._perturb import KINDS, heard, mix_at_snr, seeds_of, split_dataset_ref
from pytest_speechlab.engine.cache import output_key

RATE = 16000


def tone(seconds=2.0, rate=RATE, level=0.1):
    t = np.arange(int(seconds * rate)) / rate
    return RawAudio((level * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


def snr_db(clean, noisy):
    noise = noisy - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))


# -- parsing and identity ------------------------------------------------------------------------

def test_a_chain_is_canonical_with_every_parameter_written():
    chain = parse_chain("noise:snr=10+telephone")
    assert chain_label(chain) == "noise:snr=10,color=white,seed=0+telephone:rate=8000,mulaw=yes"
    assert parse_chain(chain_label(chain)) == chain  # the label reads back as the same chain


@pytest.mark.parametrize("text, says", [
    ("nois", "unknown kind 'nois'"),
    ("noise:snr=loud", "snr must be a number"),
    ("noise:snr=500", "outside -20..100"),
    ("noise:colour=pink", "'colour=pink' is not a parameter of noise"),
    ("noise:color=red", "color must be one of white, pink, brown"),
    ("+".join(["gain"] * 9), "9 steps (at most 8)"),
    ("", "no steps"),
])
def test_a_bad_chain_is_one_clear_error(text, says):
    with pytest.raises(SpeechlabError, match=re.escape(says)):
        parse_chain(text)


def test_every_kind_has_four_severities_that_parse():
    for kind in KINDS:
        rungs = ladder(kind)
        assert len(rungs) == 4
        assert all(parse_chain(chain_label(r)) == r for r in rungs)


def test_a_dataset_reference_splits_at_the_longest_known_prefix():
    known = {"speechlab/speech", "data/a+b.jsonl"}.__contains__
    assert split_dataset_ref("speechlab/speech+noise:snr=10", known) == ("speechlab/speech", "noise:snr=10")
    assert split_dataset_ref("data/a+b.jsonl+gain", known) == ("data/a+b.jsonl", "gain")  # '+' in a path
    assert split_dataset_ref("data/a+b.jsonl", known) == ("data/a+b.jsonl", "")
    assert split_dataset_ref("nothing+gain", known) == ("nothing+gain", "")


def test_the_perturbation_is_part_of_the_cache_key_and_clean_keys_are_unchanged():
    clean = output_key({"m": 1}, "abc", 16000, 0)
    assert clean == output_key({"m": 1}, "abc", 16000, 0, None, "")
    noisy = output_key({"m": 1}, "abc", 16000, 0, None, "noise:snr=10,color=white,seed=0")
    assert noisy != clean
    assert noisy != output_key({"m": 1}, "abc", 16000, 0, None, "noise:snr=10,color=white,seed=1")


def test_named_perturbations_come_from_pyproject_and_are_checked_at_load(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.speechlab.perturbations]\nphone = "telephone+noise:snr=20"\n')
    config = load_config(tmp_path / "pyproject.toml")
    assert chain_label(parse_chain("phone", config.perturbations)) == \
        "telephone:rate=8000,mulaw=yes+noise:snr=20,color=white,seed=0"
    (tmp_path / "pyproject.toml").write_text('[tool.speechlab.perturbations]\nphone = "telephone:rate=1"\n')
    with pytest.raises(SpeechlabError, match="rate=1 is outside"):
        load_config(tmp_path / "pyproject.toml")


# -- what each transform does --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["noise", "babble", "ambient"])
@pytest.mark.parametrize("snr", [20.0, 0.0])
def test_additive_noise_is_at_the_snr_asked_for(kind, snr):
    clean = tone()
    noisy = apply_chain(clean, parse_chain(f"{kind}:snr={snr:g}"), "u1")
    assert snr_db(clean.samples, noisy.samples) == pytest.approx(snr, abs=0.5)


@pytest.mark.parametrize("file_rate", [16000, 22050, 48000])
def test_a_severity_is_the_snr_the_model_hears_whatever_the_file_rate(file_rate):
    clean = tone(rate=file_rate)
    out, snr = heard(clean, parse_chain("noise:snr=10"), "u1", 16000)
    assert out.sample_rate == 16000 and snr == pytest.approx(10.0, abs=0.2)
    # the old way (noise added at the file's rate, the model resampling it away) heard more signal
    old = to_model_input(apply_chain(clean, parse_chain("noise:snr=10"), "u1"), 16000)
    # white noise spread to the file's Nyquist: the model's resampler keeps the 8 kHz of it it hears
    expected = 10 + 10 * np.log10((file_rate / 2) / 8000)  # 10.0, 11.4, 14.8 dB
    assert snr_db(to_model_input(clean, 16000), old) == pytest.approx(expected, abs=0.3)
    assert heard(clean, parse_chain("reverb"), "u1", 16000)[1] is None  # no added background to measure


def test_srb_werd_and_nwerd_beside_the_ratio_of_sums():
    from pytest_speechlab.robustness import SRB_WERD_FLOOR, Curve

    def curve(werds):
        c = Curve("m", "d", "noise", clean=None)
        c.points = [type("P", (), {"werd": type("W", (), {"delta": w})()})() for w in werds]
        return c

    model, reference = curve([-0.02, 0.05, 0.20, 0.40]), curve([0.0, 0.10, 0.10, 0.50])
    assert model.srb_werds == [0.0, 0.05, 0.20, 0.40]  # negative degradation clipped at 0
    model.normalize(reference)
    assert model.nwerd == pytest.approx((0 / SRB_WERD_FLOOR + 0.5 + 2.0 + 0.8) / 4)  # mean of per-severity ratios
    assert model.nwerd_sum_ratio == pytest.approx(0.63 / 0.70)  # ImageNet-C's ratio of sums (signed)
    barely = curve([0.0, 0.0, 0.01, 0.02])
    model.normalize(barely)
    assert model.nwerd > 100 and model.nwerd_sum_ratio is None  # SRB's figure explodes; the sum ratio is withheld


def test_a_chain_is_deterministic_per_seed_and_utterance():
    clean, chain = tone(), parse_chain("noise:snr=10+dropout:rate=0.2")
    first = apply_chain(clean, chain, "u1").samples
    assert np.array_equal(first, apply_chain(clean, chain, "u1").samples)
    assert not np.array_equal(first, apply_chain(clean, chain, "u2").samples)  # its own noise
    other = parse_chain("noise:snr=10,seed=1+dropout:rate=0.2,seed=1")
    assert not np.array_equal(first, apply_chain(clean, other, "u1").samples)
    assert [chain_label(c) for c in seeds_of(parse_chain("noise"), 2)] == [
        "noise:snr=20,color=white,seed=0", "noise:snr=20,color=white,seed=1"]
    assert len(seeds_of(parse_chain("speed"), 3)) == 1  # nothing random: one seed is all there is


def test_global_random_state_is_left_alone():
    np.random.seed(7)
    expected = np.random.random()
    np.random.seed(7)
    apply_chain(tone(), parse_chain("noise:snr=10+pitch:semitones=2"), "u1")
    assert np.random.random() == expected


def test_shape_changing_transforms():
    clean = tone(2.0, rate=22050)
    assert apply_chain(clean, parse_chain("telephone"), "u").sample_rate == 8000
    assert apply_chain(clean, parse_chain("mp3:level=0.99"), "u").sample_rate == 16000
    assert apply_chain(clean, parse_chain("speed:factor=2"), "u").duration == pytest.approx(1.0, abs=0.05)
    assert apply_chain(clean, parse_chain("pad:start=1,end=0.5"), "u").duration == pytest.approx(3.5, abs=0.01)
    lost = apply_chain(tone(10.0), parse_chain("dropout:rate=0.3"), "u").samples
    zero_packets = np.mean([not lost[i:i + 320].any() for i in range(0, len(lost), 320)])
    assert zero_packets == pytest.approx(0.3, abs=0.06)
    quieter = apply_chain(clean, parse_chain("gain:db=-20"), "u").samples
    assert np.sqrt(np.mean(quieter ** 2)) / np.sqrt(np.mean(clean.samples ** 2)) == pytest.approx(0.1, rel=0.01)


def test_codecs_and_reverb_change_the_signal_but_keep_its_length_and_level():
    clean = tone(2.0)
    for text in ("mp3:level=0.99", "opus:level=0.99", "reverb:rt60=1", "clip:percent=50", "telephone:rate=16000"):
        out = apply_chain(clean, parse_chain(text), "u")
        assert out.duration == pytest.approx(clean.duration, abs=0.01), text
        assert not np.allclose(out.samples[: len(clean.samples)], clean.samples, atol=1e-3), text


def test_mix_at_snr_leaves_silence_silent():
    silence = np.zeros(RATE, np.float32)
    assert not mix_at_snr(silence, np.ones(RATE), 10).any()


# -- through pytest: a perturbed dataset, the robustness suite, properties -----------------------

# tone_model: recognizes the fake dataset's 220 Hz tone by the share of its energy in the tone's
# band: through noise below ~13 dB SNR it loses half the words. fragile: right unless the audio
# starts with more than 0.3 s of silence (then it drops words), whatever the length.
WEAK_MODELS = '''

import numpy as np


class ToneModel:
    sample_rate = 16000

    def transcribe(self, audio):
        spectrum = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / self.sample_rate)
        share = spectrum[(freqs > 200) & (freqs < 240)].sum() / spectrum.sum()
        words = "the cat sat on the mat".split()
        return Transcript(" ".join(words if share > 0.95 else words[:3]))

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "fake 1.0", "languages": ["en"]}


class FragileModel(ToneModel):
    def transcribe(self, audio):
        loud = np.flatnonzero(np.abs(audio) > 1e-3)
        leading = (loud[0] if len(loud) else len(audio)) / self.sample_rate
        return Transcript("the cat sat on the mat" if leading <= 0.3 else "the mat")


@hookimpl(specname="speechlab_register_models")
def register_weak_models(register):
    register("fake/tone", task="asr", load=lambda p: ToneModel(), backend="fake", weights="none")
    register("fake/fragile", task="asr", load=lambda p: FragileModel(), backend="fake", weights="none")
'''


@pytest.fixture
def tone_project(speechlab_project):
    speechlab_project.makeconftest(FAKE_MODEL_CONFTEST + WEAK_MODELS)
    root = speechlab_project.path / "tones"
    for i in range(6):
        write_audio(root / f"t{i}.wav", 1.0 + 0.25 * i)
    write_manifest(root / "manifest.jsonl", [{"id": f"t{i}", "audio": f"t{i}.wav", "text": "the cat sat on the mat"}
                                            for i in range(6)])
    return speechlab_project


def test_a_perturbed_dataset_is_an_ordinary_dataset(tone_project):
    result = tone_project.runpytest("suites/test_asr_accuracy.py", "--speechlab-model", "fake/tone",
                                    "--speechlab-dataset", "tones/manifest.jsonl",
                                    "--speechlab-dataset", "tones/manifest.jsonl+noise:snr=0", "--speechlab-no-db")
    result.assert_outcomes(passed=2, failed=2)  # WER 0 clean; 0.5 through 0 dB noise
    out = result.stdout.str()
    assert "test_corpus_wer[fake/tone-tones/manifest.jsonl+noise:snr=0,color=white,seed=0] FAILED" in out \
        or "FAILED suites/test_asr_accuracy.py::test_corpus_wer[fake/tone-tones/manifest.jsonl+noise:snr=0,color=white,seed=0]" in out
    assert "corpus WER 0.5000" in out


def test_a_bad_perturbation_on_the_command_line_is_a_usage_error(tone_project):
    result = tone_project.runpytest("suites/test_asr_accuracy.py", "--speechlab-model", "fake/tone",
                                    "--speechlab-dataset", "tones/manifest.jsonl+noise:snr=loud", "--speechlab-no-db")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "snr must be a number, not 'loud'" in result.stderr.str()


def test_the_robustness_suite_finds_where_the_model_breaks(tone_project):
    with open(tone_project.path / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.speechlab.robustness]\nperturbations = ["noise", "gain"]\nseeds = 2\n')
    args = ["suites/test_robustness.py", "--speechlab-model", "fake/tone", "--speechlab-dataset", "tones/manifest.jsonl",
            "--speechlab-no-db", "--speechlab-json", "run.json", "--speechlab-markdown", "r.md", "--html", "r.html"]
    assert "1 deselected" in tone_project.runpytest(*args[:5]).stdout.str()  # opt-in
    result = tone_project.runpytest(*args, "--speechlab-robustness")
    result.assert_outcomes(passed=1)  # breaks at severity 3 (10 dB): past the gate severity 2
    out = result.stdout.str()
    assert re.search(r"noise: snr=30,color=white,seed=0 \(heard 30\.\d dB\) \| snr=20,color=white,seed=0 "
                     r"\(heard (19\.9|20\.\d) dB\) \| snr=10", out)
    assert "[over tones/manifest.jsonl]" in out  # the grade is over the selected dataset, not the perturbed ones
    markdown = (tone_project.path / "r.md").read_text()
    noise = next(line for line in markdown.splitlines() if line.startswith("| fake/tone | noise |"))
    cells = [c.strip() for c in noise.strip("|").split("|")]
    assert cells[2] == "0.000" and cells[3].startswith("0.000") and cells[5].startswith("0.500")
    assert cells[9] == "3 (WERD +0.500)"  # breaks at severity 3
    # against itself (the reference: the first selected model): SRB's mean of per-severity ratios
    # counts a severity where neither degrades as 0 (0 / the 1e-6 floor); the ratio of sums is 1
    assert cells[7] == "0.50" and cells[8] == "1.00"
    gain = next(line for line in markdown.splitlines() if line.startswith("| fake/tone | gain |"))
    assert gain.split("|")[10].strip() == "-"  # quieter is not worse for it
    html = (tone_project.path / "r.html").read_text()
    assert 'id="speechlab-robustness"' in html and "<polyline" in html
    assert "noise on tones/manifest.jsonl: WER against severity" in html
    # robustness-only datasets are not rows of the scorecard, but every output is in the run file
    assert "tones/manifest.jsonl+noise" not in markdown.split("## Robustness")[0]
    run = json.loads((tone_project.path / "run.json").read_text())
    assert [e["dataset"] for e in run["evaluations"]] == ["tones/manifest.jsonl"]
    assert len(run["robustness"]["evaluations"]) == 4 * 2 + 4  # noise at two seeds, gain (no randomness) at one
    heard_at = {e["dataset"]: [u["snr_db"] for u in e["utterances"]] for e in run["robustness"]["evaluations"]}
    noisy = next(v for k, v in heard_at.items() if "noise:snr=10," in k)
    assert noisy and all(v == pytest.approx(10.0, abs=0.3) for v in noisy)  # measured per utterance, as heard
    assert all(v is None for k, vs in heard_at.items() if "+gain" in k for v in vs)  # no background added
    assert {c["kind"] for c in run["robustness"]["curves"]} == {"noise", "gain"}

    with open(tone_project.path / "pyproject.toml", "a") as fh:
        fh.write("gate_severity = 3\n")
    failed = tone_project.runpytest(*args, "--speechlab-robustness")
    failed.assert_outcomes(failed=1)
    assert "noise: WER 0.500 at severity 3 (noise:snr=10,color=white,seed=0) is +0.500 over clean 0.000" in \
        failed.stdout.str()


PROPERTY_SUITE = '''
from hypothesis import given

from pytest_speechlab.properties import padding, property_settings


@property_settings(examples=40, derandomize=True, database=None)
@given(chain=padding(max_seconds=1.0))
def test_padding(speechlab_metamorphic, chain):
    speechlab_metamorphic.check(chain, max_words=1, what="up to 1 s of silence at either end")
'''


def test_a_fragile_model_is_caught_and_shrunk_to_a_minimal_example(tone_project):
    tone_project.makepyfile(test_fragile=PROPERTY_SUITE)
    args = ["test_fragile.py", "--speechlab-model", "fake/fragile", "--speechlab-dataset", "tones/manifest.jsonl",
            "--speechlab-no-db", "--html", "r.html"]
    assert "1 deselected" in tone_project.runpytest(*args).stdout.str()  # opt-in
    result = tone_project.runpytest(*args, "--speechlab-properties")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    shrunk = re.search(r"\(pad:start=([\d.]+),end=([\d.]+),dbfs=-120,seed=0\) changed more than 1 word", out)
    assert shrunk, out
    start, end = map(float, shrunk.groups())
    assert end == 0.0  # the end does not matter: shrunk away
    assert 0.29 <= start <= 0.35  # shrunk to the 0.3 s the model tolerates (the tone starts at 0)
    assert "clean 'the cat sat on the mat' -> 'the mat'" in out
    assert "MetamorphicCheck(fake/fragile on tones/manifest.jsonl, 3 clips)" in out  # not pages of fields
    html = (tone_project.path / "r.html").read_text()
    evidence = html.split('id="speechlab-properties"', 1)[1]
    assert f"pad:start={shrunk.group(1)},end=0" in evidence and "<audio" in evidence


def test_a_robust_model_passes_the_same_property(tone_project):
    tone_project.makepyfile(test_fragile=PROPERTY_SUITE)
    result = tone_project.runpytest("test_fragile.py", "--speechlab-model", "fake/tone", "--speechlab-dataset",
                                    "tones/manifest.jsonl", "--speechlab-no-db", "--speechlab-properties")
    result.assert_outcomes(passed=1)


def test_a_severity_that_could_not_be_measured_fails_the_suite(tone_project, monkeypatch):
    from pytest_speechlab import _perturb

    def broken(samples, rate, rng, params):
        raise RuntimeError("codec exploded")

    monkeypatch.setitem(_perturb.KINDS, "mp3", _perturb.KINDS["mp3"].__class__(
        broken, *[getattr(_perturb.KINDS["mp3"], f) for f in ("defaults", "limits", "severities", "description")]))
    with open(tone_project.path / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.speechlab.robustness]\nperturbations = ["mp3"]\n')
    result = tone_project.runpytest("suites/test_robustness.py", "--speechlab-model", "fake/tone", "--speechlab-dataset",
                                    "tones/manifest.jsonl", "--speechlab-no-db", "--speechlab-robustness")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "mp3 severity 1 (mp3:level=0.75): 6 utterance(s) failed" in out
    assert "perturbation mp3:level=0.75 failed: RuntimeError: codec exploded" in out
    assert "- (6 errors)" in out  # and the table says so


def test_the_shipped_properties_hold_for_tiny_en_on_the_fixtures(pytester, monkeypatch):
    """Real weights on five speech fixtures, a few examples per property (bounded for CI)."""
    pytest.importorskip("speechlab_faster_whisper", reason="the faster-whisper plugin is not installed")
    from helpers import REPO

    fixtures = REPO / "fixtures" / "speech"
    lines = [json.loads(line) for line in (fixtures / "manifest.jsonl").read_text().splitlines() if line.strip()][:5]
    write_manifest(pytester.path / "five.jsonl", [{**e, "audio": str(fixtures / e["audio"])} for e in lines])
    suites = pytester.mkdir("suites")
    (suites / "test_properties.py").write_text((REPO / "suites" / "test_properties.py").read_text())
    monkeypatch.setenv("SPEECHLAB_PROPERTY_EXAMPLES", "4")
    result = pytester.runpytest_subprocess("suites", "--speechlab-no-db", "--speechlab-properties", "-p", "no:cacheprovider",
                                           "--speechlab-model", "faster-whisper/tiny.en", "--speechlab-dataset", "five.jsonl")
    result.assert_outcomes(passed=2)
