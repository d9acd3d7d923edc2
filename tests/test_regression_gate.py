"""The regression gate and the `speechlab` command, end to end on recorded runs."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import REPO, write_audio, write_manifest
from pytest_speechlab._cli import main as speechlab

N = 60
WORDS = "amber birch cedar delta ember fjord grove harbor island juniper".split()

GATE_CONFTEST = '''
import json, os
from pytest_speechlab import hookimpl, Transcript

class Lookup:
    """Knows each clip by its length; SPEECHLAB_TEST_DROP drops the last word of every Nth clip."""
    sample_rate = 16000

    def __init__(self, params):
        self.texts = json.load(open(os.environ["TEXTS_JSON"]))
        self.drop_every = int(os.environ.get("SPEECHLAB_TEST_DROP", "0"))

    def transcribe(self, audio):
        key = f"{len(audio) / self.sample_rate:.2f}"
        index, text = self.texts[key]
        if self.drop_every and index % self.drop_every == 0:
            text = text.rsplit(" ", 1)[0]
        return Transcript(text)

    def info(self):
        return {"threads": 1, "device": "cpu"}

@hookimpl
def speechlab_register_models(register):
    register("fake/lookup", task="asr", load=Lookup, backend="fake")
'''


@pytest.fixture
def gate_project(pytester, monkeypatch):
    texts = {}
    lines = []
    for i in range(N):
        seconds = 1.0 + 0.05 * i
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
        write_audio(pytester.path / "data" / f"{i}.wav", seconds)
        texts[f"{seconds:.2f}"] = (i, text)
        lines.append({"id": f"u{i:02d}", "audio": f"{i}.wav", "text": text})
    write_manifest(pytester.path / "data" / "manifest.jsonl", lines)
    (pytester.path / "texts.json").write_text(json.dumps(texts))
    monkeypatch.setenv("TEXTS_JSON", str(pytester.path / "texts.json"))
    monkeypatch.setenv("SPEECHLAB_DB", str(pytester.path / "results.db"))
    monkeypatch.chdir(pytester.path)
    pytester.makeconftest(GATE_CONFTEST)
    (pytester.path / "suites").mkdir()
    for suite in ("test_regression.py", "test_asr_accuracy.py"):
        (pytester.path / "suites" / suite).write_text((REPO / "suites" / suite).read_text())
    pytester.makefile(".toml", pyproject="""
[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
speechlab_models = ["fake/lookup"]
speechlab_datasets = ["data/manifest.jsonl"]

[tool.speechlab]
db = "results.db"

[tool.speechlab.thresholds]
wer = 0.5
cer = 0.5
rtf = 1000.0

# The fake model takes microseconds, so its RTF ratio between two runs is noise on a busy machine:
# these tests are about WER; the RTF rule has its own test below.
[tool.speechlab.regression]
rtf_tolerance = 1000.0
""")
    return pytester


def cli(*args: str):
    result = CliRunner().invoke(speechlab, list(args), catch_exceptions=False)
    return result


def test_gate_fails_on_a_real_regression_and_passes_on_no_change(gate_project, monkeypatch):
    gate_project.runpytest("suites").assert_outcomes(passed=2)  # no baseline: gate deselected
    assert "baseline main -> run" in cli("baseline", "set", "main", "latest").output

    same = gate_project.runpytest("suites", "--speechlab-baseline", "main", "--speechlab-fail-on-regression")
    same.assert_outcomes(passed=3)
    assert "within noise" in same.stdout.str()

    monkeypatch.setenv("SPEECHLAB_TEST_DROP", "3")  # one word of six lost on every third clip: +5.6 points
    worse = gate_project.runpytest("suites", "--speechlab-baseline", "main", "--speechlab-fail-on-regression")
    worse.assert_outcomes(passed=2, failed=1)
    text = worse.stdout.str()
    assert "regression against the baseline: WER 0.0000 -> 0.0556 (+0.0556" in text
    assert "got worse (20):" in text and "u00: errors 0 -> 1" in text

    warned = gate_project.runpytest("suites", "--speechlab-baseline", "main")  # report only
    assert warned.parseoutcomes()["passed"] == 3 and "failed" not in warned.parseoutcomes()
    assert "UserWarning: regression against the baseline: WER 0.0000 -> 0.0556" in warned.stdout.str()


def test_a_small_change_within_noise_passes(gate_project, monkeypatch):
    gate_project.runpytest("suites")
    cli("baseline", "set", "main", "latest")
    monkeypatch.setenv("SPEECHLAB_TEST_DROP", "30")  # 2 words of 360: not significant
    result = gate_project.runpytest("suites", "--speechlab-baseline", "main", "--speechlab-fail-on-regression")
    result.assert_outcomes(passed=3)


def test_cli_lists_shows_compares_exports_and_prunes(gate_project, monkeypatch, tmp_path):
    gate_project.runpytest("suites")
    monkeypatch.setenv("SPEECHLAB_TEST_DROP", "2")
    gate_project.runpytest("suites")

    runs = cli("runs")
    assert runs.exit_code == 0 and runs.output.count("complete") == 2 and "fake/lookup" in runs.output

    show = cli("show", "latest")
    assert "WER 95% CI" in show.output and "fake/lookup" in show.output and "tests: 2 recorded" in show.output

    ids = [line.split()[0] for line in runs.output.splitlines()[2:]]
    compare = cli("compare", ids[1], ids[0])
    assert compare.exit_code == 1  # a regression
    assert "REGRESSION" in compare.output and "got worse (30)" in compare.output
    assert "compared on the same 60 utterances" in compare.output

    out = tmp_path / "run.json"
    assert cli("export", ids[0], "-o", str(out)).exit_code == 0
    other = cli("--db", str(tmp_path / "other.db"), "import", str(out), "--baseline", "main")
    assert other.exit_code == 0 and "as baseline main" in other.output
    assert ids[0] in cli("--db", str(tmp_path / "other.db"), "baseline", "list").output

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not a JSON run export" in cli("import", str(bad)).output

    assert "deleted 1 run(s)" in cli("prune", "--keep", "1", "--yes").output
    assert cli("runs").output.count("complete") == 1
    assert "no such run" in cli("show", "nope").output


def test_help_is_there_for_a_newcomer():
    text = cli("--help").output
    for command in ("runs", "show", "compare", "baseline", "export", "import", "prune"):
        assert command in text
    assert "speechlab baseline set main latest" in text


def test_rtf_is_judged_on_its_ratio_to_the_baseline_with_the_machines_named():
    from pytest_speechlab._compare import Side, compare
    from pytest_speechlab._stats import GatePolicy

    words = {f"u{i}": (0, 6) for i in range(20)}
    base = Side("baseline", "m", "d", words=dict(words), processing_seconds=10.0, audio_seconds=100.0, cpu="CPU A")
    for seconds, regressed in ((14.9, False), (15.1, True)):
        cand = Side("this run", "m", "d", words=dict(words), processing_seconds=seconds, audio_seconds=100.0,
                    cpu="CPU B")
        found = compare(base, cand, GatePolicy(rtf_tolerance=0.5)).regressions
        assert bool(found) is regressed, found
        if regressed:
            assert found == ["RTF 0.100 -> 0.151 (x1.51 > x1.50; machines: CPU A -> CPU B)"]
