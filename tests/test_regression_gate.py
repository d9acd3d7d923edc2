"""The regression gate and the `speechlab` command, end to end on recorded runs."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import REPO, write_audio, write_manifest
from pytest_speechlab.cli import main as speechlab

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
        with open(os.environ["TEXTS_JSON"] + ".loads", "a") as fh:
            fh.write("loaded\\n")

    def transcribe(self, audio):
        key = f"{len(audio) / self.sample_rate:.2f}"
        index, text = self.texts[key]
        if self.drop_every and index % self.drop_every == 0:
            text = text.rsplit(" ", 1)[0]
        return Transcript(text)

    def info(self):
        # what changes its output is its identity: the inference cache keys on it
        return {"threads": 1, "device": "cpu", "decode": {"beam_size": int(os.environ.get("SPEECHLAB_TEST_BEAM", "5")),
                                                          "drop_every": self.drop_every}}

@hookimpl
def speechlab_register_models(register):
    register("fake/lookup", task="asr", load=Lookup, backend="fake")
    register("fake/lookup-greedy", task="asr", load=Lookup, backend="fake")  # the same under a new name
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
    assert "95% CI" in show.output and "wer 0.083" in show.output and "fake/lookup" in show.output and "tests: 2 recorded" in show.output

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
    from pytest_speechlab.compare import Side, compare
    from pytest_speechlab.metrics.stats import GatePolicy

    words = {f"u{i}": (0, 6) for i in range(20)}
    base = Side("baseline", "m", "d", words=dict(words), processing_seconds=10.0, audio_seconds=100.0, cpu="CPU A")
    for seconds, regressed in ((14.9, False), (15.1, True)):
        cand = Side("this run", "m", "d", words=dict(words), processing_seconds=seconds, audio_seconds=100.0,
                    cpu="CPU B")
        found = compare(base, cand, GatePolicy(rtf_tolerance=0.5)).regressions
        assert bool(found) is regressed, found
        if regressed:
            assert found == ["RTF 0.100 -> 0.151 (x1.51 > x1.50; machines: CPU A -> CPU B)"]


def loads(project) -> int:
    log = project.path / "texts.json.loads"
    return len(log.read_text().split()) if log.exists() else 0


def prepare(project, case: str) -> list[str]:
    """Set up the case; returns extra pytest arguments."""
    from pytest_speechlab.sinks.store import Store

    if case == "empty database":
        Store(f"sqlite:///{project.path / 'results.db'}").engine.dispose()
    if case in ("no such baseline", "dataset not in the baseline"):
        project.runpytest("suites").assert_outcomes(passed=2)
        cli("baseline", "set", "main", "latest")
    if case == "dataset not in the baseline":
        (project.path / "data" / "other.jsonl").write_text((project.path / "data" / "manifest.jsonl").read_text())
        return ["--speechlab-dataset", "data/other.jsonl"]
    if case == "unreachable database":
        return ["--speechlab-db", "postgresql+psycopg://nobody:pw@127.0.0.1:9/none"]
    if case == "no database":
        return ["--speechlab-no-db"]
    return []


GATE_CASES = {
    "no database file": "no results database at",
    "empty database": "Newest runs: none (the database is empty)",
    "no such baseline": "run 'nosuchbaseline': no such run or baseline in sqlite:",
    "unreachable database": "OperationalError",
    "no database": "--speechlab-no-db: there is no results database to read baseline 'main' from",
    "dataset not in the baseline": "has no results for fake/lookup on data/other.jsonl; it has fake/lookup on data/manifest.jsonl",
}


@pytest.mark.parametrize("case", GATE_CASES)
def test_a_gate_that_cannot_compare_fails_before_any_model_is_built(gate_project, case):
    extra = prepare(gate_project, case)
    before = loads(gate_project)
    name = "nosuchbaseline" if case == "no such baseline" else "main"
    result = gate_project.runpytest("suites", "--speechlab-baseline", name, "--speechlab-fail-on-regression", *extra)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text[-3000:]
    assert GATE_CASES[case] in text and "the regression gate cannot compare" in text
    assert loads(gate_project) == before  # nothing was built or evaluated
    assert "pw@" not in text  # the password of the unreachable URL is redacted


@pytest.mark.parametrize("case", ["no such baseline", "dataset not in the baseline"])
def test_without_fail_on_regression_it_stays_a_warning(gate_project, case):
    extra = prepare(gate_project, case)
    name = "nosuchbaseline" if case == "no such baseline" else "main"
    result = gate_project.runpytest("suites", "--speechlab-baseline", name, *extra, "-rs")
    text = result.stdout.str()
    assert result.ret == 0 and f"regression comparison: baseline '{name}'" in text
    assert result.parseoutcomes()["skipped"] == 1  # the regression test says why it could not compare


def test_fail_on_regression_needs_a_baseline(gate_project):
    result = gate_project.runpytest("suites", "--speechlab-fail-on-regression")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--speechlab-fail-on-regression needs --speechlab-baseline NAME" in result.stderr.str()


def test_the_comparison_names_identity_changes_and_compares_hallucinations(gate_project, monkeypatch):
    gate_project.runpytest("suites")
    cli("baseline", "set", "main", "latest")
    monkeypatch.setenv("SPEECHLAB_TEST_BEAM", "1")
    result = gate_project.runpytest("suites", "--speechlab-baseline", "main")
    text = result.stdout.str()
    assert "model identity changed: beam_size 5 -> 1" in text
    assert "hallucinations 0/60 [0.00-0.06] -> 0/60 [0.00-0.06]" in text
    assert "detectable with 80% power" in text
    ids = [line.split()[0] for line in cli("runs").output.splitlines()[2:]]
    compare = cli("compare", ids[1], ids[0])
    assert compare.exit_code == 0 and "beam_size 5 -> 1" in compare.output


def test_the_gates_analysis_is_in_every_report(gate_project, monkeypatch):
    """The identity change, each figure's difference with its interval, p, adjusted p, the minimum
    detectable effect and the verdict: in the Markdown scorecard (a CI step summary), the HTML
    report, the JUnit properties and the run file, all rendered from one analysis."""
    import xml.etree.ElementTree as ET

    gate_project.runpytest("suites")
    cli("baseline", "set", "main", "latest")
    monkeypatch.setenv("SPEECHLAB_TEST_BEAM", "1")
    summary = gate_project.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = gate_project.runpytest("suites", "--speechlab-baseline", "main", "--speechlab-markdown", "score.md",
                                    "--html", "report.html", "--junitxml", "junit.xml", "--speechlab-json", "run.json")
    assert result.ret == 0
    scorecard = (gate_project.path / "score.md").read_text()
    assert scorecard == summary.read_text()
    page = (gate_project.path / "report.html").read_text()
    for text in (scorecard, page):
        assert "Regression gate" in text
        assert "beam_size 5 -&gt; 1" in text or "beam\\_size 5 -&gt; 1" in text
        assert "within noise" in text and "Holm" in text and "detectable" in text
        assert "no regression (WER larger than +0.0" in text  # the verdict says what it could have seen
    assert "<details><summary>fake/lookup (baseline main, run " in scorecard
    run = json.loads((gate_project.path / "run.json").read_text())
    (analysis,) = run["gate"]["comparisons"]
    assert analysis["identity_changes"] == ["beam_size 5 -> 1"] and analysis["regressed"] is False
    wer = analysis["figures"][0]
    assert wer["name"] == "WER" and wer["verdict"] == "within noise" and wer["mde"] > 0 and wer["p_adjusted"] is not None
    assert run["gate"]["baseline"] == "main" and run["gate"]["baseline_run"]
    props = {p.get("name"): p.get("value") for case in ET.parse(gate_project.path / "junit.xml").iter("testcase")
             if case.get("name").startswith("test_no_regression_against_baseline") for p in case.iter("property")}
    assert props["speechlab_gate_identity_changes"] == "beam_size 5 -> 1"
    assert props["speechlab_gate_wer_verdict"] == "within noise" and float(props["speechlab_gate_wer_mde"]) > 0
    assert props["speechlab_gate_verdict"].startswith("no regression (WER larger than")


def test_a_candidate_under_a_new_name_is_gated_against_the_baseline_model_it_names(gate_project, monkeypatch):
    gate_project.runpytest("suites")
    cli("baseline", "set", "main", "latest")
    greedy = ("suites", "--speechlab-model", "fake/lookup-greedy", "--speechlab-baseline", "main",
              "--speechlab-fail-on-regression")
    refused = gate_project.runpytest(*greedy)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert ("has no results for fake/lookup-greedy on data/manifest.jsonl; it has fake/lookup on data/manifest.jsonl"
            in refused.stderr.str())
    assert "--speechlab-baseline-model fake/lookup-greedy=fake/lookup" in refused.stderr.str()  # what to do
    monkeypatch.setenv("SPEECHLAB_TEST_DROP", "3")
    gated = gate_project.runpytest(*greedy, "--speechlab-baseline-model", "fake/lookup-greedy=fake/lookup")
    text = gated.stdout.str()
    assert gated.ret == pytest.ExitCode.TESTS_FAILED and gated.parseoutcomes()["failed"] == 1
    assert "fake/lookup (baseline main, run " in text and ") -> fake/lookup-greedy (this run) on data/manifest.jsonl" in text
    assert "verdict: REGRESSION: WER" in text
    monkeypatch.delenv("SPEECHLAB_TEST_DROP")
    toml = gate_project.path / "pyproject.toml"
    toml.write_text(toml.read_text() + '\n[tool.speechlab.regression.baseline_models]\n"fake/lookup-greedy" = "fake/lookup"\n')
    assert gate_project.runpytest(*greedy).ret == 0  # the mapping from the configuration
    compare = cli("compare", "main", "latest")
    assert compare.exit_code == 2
    assert ("the runs have fake/lookup in the baseline and fake/lookup-greedy in the candidate on data/manifest.jsonl"
            in compare.output)  # different names are not paired unless asked
    compare = cli("compare", "main", "latest", "--model-a", "fake/lookup", "--model-b", "fake/lookup-greedy")
    assert compare.exit_code == 0
    assert "paired: fake/lookup (baseline, run " in compare.output and "[different names, as asked]" in compare.output
    bad = gate_project.runpytest(*greedy, "--speechlab-baseline-model", "fake/lookup-greedy")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR and "give CANDIDATE=BASELINE" in bad.stderr.str()


def test_compare_tells_a_regression_from_a_usage_error(gate_project, monkeypatch):
    gate_project.runpytest("suites")
    assert cli("compare", "latest", "nosuchrun").exit_code == 2
    monkeypatch.setenv("SPEECHLAB_TEST_DROP", "2")
    gate_project.runpytest("suites")
    ids = [line.split()[0] for line in cli("runs").output.splitlines()[2:]]
    assert cli("compare", ids[1], ids[0]).exit_code == 1
    assert cli("compare", ids[1], ids[0], "--dataset", "nope").exit_code == 2


def test_the_gate_corrects_over_its_whole_family(gate_project, monkeypatch):
    """Two datasets: each metric's p-value is adjusted over the 6 tests (2 datasets x WER, CER,
    hallucination), and the report says so."""
    (gate_project.path / "data" / "copy.jsonl").write_text((gate_project.path / "data" / "manifest.jsonl").read_text())
    both = ["--speechlab-dataset", "data/manifest.jsonl", "--speechlab-dataset", "data/copy.jsonl"]
    gate_project.runpytest("suites", *both)
    cli("baseline", "set", "main", "latest")
    monkeypatch.setenv("SPEECHLAB_TEST_DROP", "3")
    result = gate_project.runpytest("suites", *both, "--speechlab-baseline", "main", "--speechlab-fail-on-regression")
    text = result.stdout.str()
    assert "Holm over 6 comparisons" in text
    assert result.parseoutcomes()["failed"] == 2
