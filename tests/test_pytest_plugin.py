"""End to end through pytest (pytester): the shipped suites against a fake model in conftest.py."""
from __future__ import annotations

import pytest

from helpers import load_log, write_audio, write_manifest


def summary(result: pytest.RunResult) -> str:
    text = result.stdout.str()
    assert "speechlab summary" in text, text
    return text.split("speechlab summary", 1)[1]


def row(text: str, model: str, dataset: str = "data/manifest.jsonl") -> list[str]:
    """The model x dataset's summary cells; a table split to fit the terminal is joined again."""
    cells: list[str] = []
    for line in text.splitlines():
        if line.startswith(model + " ") and dataset in line:
            parts = line.split()
            cells += parts if not cells else parts[2:]
        elif cells and line.startswith("WER/CER: corpus level"):
            break
    if not cells:
        raise AssertionError(f"no summary row for {model} x {dataset} in:\n{text}")
    return cells


def test_suites_pass_and_summary_shows_figures_and_one_load(speechlab_project):
    result = speechlab_project.runpytest("suites")
    result.assert_outcomes(passed=6, skipped=1)  # readiness skips: no --speechlab-min-grade
    cells = row(summary(result), "fake/perfect")
    # model dataset utts audio WER WER-CI CER S/D/I halluc halluc-CI RTF RTFx threads load loads cached errors
    assert cells[2:4] == ["4/4", "7.5"]
    # no error in 12 words: the interval is the Wilson one of 0/12, never a zero-width "95%"
    assert cells[4:10] == ["0.000", "0.000-0.242", "0.000", "0/0/0", "0/4", "0.00-0.49"]
    assert cells[-3:] == ["1", "0/4", "0"]  # loads, cached, errors
    assert load_log(speechlab_project.path) == ["perfect"]


def test_two_models_each_built_once_ids_show_model_and_failure_shows_worst(speechlab_project):
    result = speechlab_project.runpytest(
        "suites", "--speechlab-model", "fake/perfect", "--speechlab-model", "fake/sloppy", "-v"
    )
    # skipped: two readiness tests, and the cross-runtime test (the two fakes share no weights)
    result.assert_outcomes(passed=9, failed=3, skipped=3)
    text = result.stdout.str()
    assert "test_corpus_wer[fake/sloppy-data/manifest.jsonl] FAILED" in text
    assert "test_corpus_wer[fake/perfect-data/manifest.jsonl] PASSED" in text
    assert "corpus WER 0.3333 > threshold 0.1000 for fake/sloppy on data/manifest.jsonl" in text
    assert "4 errors / 12 reference words (S=2 D=1 I=1)" in text
    assert "ref: 'the cat sat on the mat'" in text and "hyp: 'the bat sat on mat mat mat'" in text
    assert sorted(load_log(speechlab_project.path)) == ["perfect", "sloppy"]
    assert row(summary(result), "fake/sloppy")[4] == "0.333"


def test_k_selects_a_model(speechlab_project):
    result = speechlab_project.runpytest(
        "suites", "--speechlab-model", "fake/perfect", "--speechlab-model", "fake/sloppy", "-k", "perfect"
    )
    result.assert_outcomes(passed=6, skipped=1)
    assert load_log(speechlab_project.path) == ["perfect"]


def test_bad_inputs_are_reported_and_good_utterances_still_evaluated(speechlab_project):
    data = speechlab_project.path / "data"
    (data / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt this is not audio")
    write_manifest(data / "bad.jsonl", [
        {"id": "a", "audio": "a.wav", "text": "the cat sat on the mat"},
        {"id": "gone", "audio": "missing.wav", "text": "never heard"},
        {"id": "corrupt", "audio": "corrupt.wav", "text": "broken file"},
        '{"id": "json", "audio": "a.wav", "text": ',
        {"id": "c", "audio": "c.wav", "text": "hello world"},
    ])
    result = speechlab_project.runpytest("suites", "--speechlab-dataset", str(data / "bad.jsonl"))
    result.assert_outcomes(passed=4, failed=1, skipped=1)  # WER, CER, RTF pass on the good utterances
    text = result.stdout.str()
    assert "3 input error(s) in" in text
    assert "bad.jsonl line 2: audio 'missing.wav' not found (relative to" in text
    assert "bad.jsonl line 3: audio 'corrupt.wav': cannot decode audio" in text
    assert "bad.jsonl line 4: not valid JSON" in text
    cells = row(summary(result), "fake/perfect", "bad.jsonl")
    assert cells[2] == "2/5" and cells[4] == "0.000" and cells[-1] == "3"


def test_a_model_that_raises_fails_its_utterance_only(speechlab_project):
    result = speechlab_project.runpytest("suites", "--speechlab-model", "fake/raises")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*manifest.jsonl line 2: audio 'b.flac': model fake/raises raised "
                                 "RuntimeError: decoder exploded*"])
    assert row(summary(result), "fake/raises")[2] == "3/4"


def test_a_model_that_fails_to_load_errors_its_tests_and_others_run(speechlab_project):
    suites = speechlab_project.path / "suites"
    suites.joinpath("conftest.py").write_text(
        "from pytest_speechlab import hookimpl\n"
        "def load(params):\n"
        "    raise OSError('weights not found at /nowhere')\n"
        "@hookimpl\n"
        "def speechlab_register_models(register):\n"
        "    register('broken/model', task='asr', load=load)\n"
    )
    result = speechlab_project.runpytest(
        "suites", "--speechlab-model", "broken/model", "--speechlab-model", "fake/perfect"
    )
    result.assert_outcomes(passed=6, skipped=2, errors=7)  # readiness and cross-runtime skip
    result.stdout.fnmatch_lines(["*model 'broken/model' (plugin *) failed to load: OSError: weights not found*"])


def test_unknown_model_is_a_usage_error_listing_known_models(speechlab_project):
    result = speechlab_project.runpytest("suites", "--speechlab-model", "fake/nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown model 'fake/nope'; registered models: *fake/perfect*"])


def test_list_models_shows_conftest_models_variants_and_datasets(speechlab_project):
    speechlab_project.path.joinpath("pyproject.toml").write_text(
        speechlab_project.path.joinpath("pyproject.toml").read_text()
        + '\n[tool.speechlab.models.fast-sloppy]\nmodel = "fake/sloppy"\nbeam_size = 1\n'
    )
    result = speechlab_project.runpytest("--speechlab-list-models")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*name*task*backend*",
        "*fake/perfect*asr*fake*",
        "*plugin: conftest.py*",
        "*weights: none*",
        "*params: label='perfect'*",
        "*fast-sloppy*asr*fake*",
        "*beam_size=1*",
        "*speechlab/speech*pytest-speechlab (built-in)*",
        "perturbations:",
        "*noise:snr=20,color=white,seed=0*",
    ])
    assert max(map(len, result.outlines)) <= 80  # pytester's terminal is 80 columns


def test_variant_is_selected_by_name(speechlab_project):
    speechlab_project.path.joinpath("pyproject.toml").write_text(
        speechlab_project.path.joinpath("pyproject.toml").read_text()
        + '\n[tool.speechlab.models.mended]\nmodel = "fake/sloppy"\nerrors = {}\n'
    )
    result = speechlab_project.runpytest("suites", "--speechlab-model", "mended")
    result.assert_outcomes(passed=6, skipped=1)
    assert row(summary(result), "mended")[4] == "0.000"


def test_ini_selection_and_speech_only_suites_skip_nonspeech_datasets(speechlab_project):
    data = speechlab_project.path / "data"
    write_audio(data / "noise.wav", 2.0, level=0.0)
    write_manifest(data / "noise.jsonl", [{"audio": "noise.wav", "kind": "nonspeech"}])
    result = speechlab_project.runpytest(
        "suites", "--speechlab-dataset", str(data / "manifest.jsonl"), "--speechlab-dataset",
        str(data / "noise.jsonl"), "--collect-only", "-q",
    )
    text = result.stdout.str()
    assert "test_corpus_wer[fake/perfect-data/noise.jsonl]" not in text
    assert "test_real_time_factor[fake/perfect-data/noise.jsonl]" in text
    assert "test_corpus_wer[fake/perfect-data/manifest.jsonl]" in text


def test_progress_lines_for_ci_logs(speechlab_project, monkeypatch):
    import pytest_speechlab._progress as progress

    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.0)
    result = speechlab_project.runpytest("suites", "--speechlab-progress", "lines")
    result.stdout.fnmatch_lines([
        "speechlab: fake/perfect x data/manifest.jsonl: started, 4 items",
        "speechlab: fake/perfect x data/manifest.jsonl: 1/4 items, 1.0 s audio, * s elapsed, ETA * s",
        "speechlab: fake/perfect x data/manifest.jsonl: 4/4 items, 7.5 s audio, * s elapsed",
    ])
    # a second run takes its outputs from the cache and times a sample again: said as it starts
    again = speechlab_project.runpytest("suites", "--speechlab-progress", "lines")
    again.stdout.fnmatch_lines([
        "speechlab: fake/perfect x data/manifest.jsonl (re-timing 4 cached): started, 4 items",
        "speechlab: fake/perfect x data/manifest.jsonl (re-timing 4 cached): 4/4 items, 7.5 s audio, * s elapsed",
    ])


def test_progress_bar_keeps_pytest_lines_and_fits_the_terminal(speechlab_project, monkeypatch):
    """The bar starts on a line of its own and pytest writes the file name again after it."""
    import re

    import pytest_speechlab._progress as progress

    monkeypatch.setattr(progress, "BAR_INTERVAL_S", 0.0)
    result = speechlab_project.runpytest("suites", "--speechlab-progress", "bar")
    # the bar never shares a line with pytest's own "suites/test_x.py ..." progress (which it would erase)
    assert not [line for line in result.outlines if "suites/" in line and "\x1b[" in line]
    plain = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in result.outlines]
    results_lines = [line for line in plain if line.startswith("suites/")]
    assert {line.split()[0] for line in results_lines} >= {"suites/test_asr_accuracy.py", "suites/test_asr_speed.py"}
    bar = [line for line in plain if "ETA" in line]
    assert bar and max(len(line) for line in bar) <= 80


def test_repeat_measures_nondeterminism(speechlab_project):
    result = speechlab_project.runpytest("suites/test_asr_speed.py", "--speechlab-model", "fake/flaky",
                                         "--speechlab-model", "fake/perfect", "--speechlab-repeat", "3")
    result.assert_outcomes(passed=2)
    text = summary(result)
    assert "nondet" in text.split("WER/CER: corpus level")[0]
    assert row(text, "fake/flaky")[-1] == "0.250"      # 1 of 4 utterances changed between runs
    assert row(text, "fake/perfect")[-1] == "0.000"


def test_the_summary_ends_saying_where_to_look_next(speechlab_project):
    """The last line names the commands that show this run (and they work as printed) and the report."""
    import shlex

    from click.testing import CliRunner

    from pytest_speechlab.cli import main as speechlab

    db = speechlab_project.path / "where.db"
    result = speechlab_project.runpytest("suites/test_asr_accuracy.py", "--speechlab-db", str(db))
    (line,) = [line for line in result.stdout.lines if line.startswith("next: ")]
    show, view, report = line.removeprefix("next: ").split("; ")
    assert view.startswith(f"speechlab --db {db} view") and report.startswith("--html report.html")
    command = shlex.split(show.split(" (")[0])
    shown = CliRunner().invoke(speechlab, command[1:])
    assert shown.exit_code == 0 and "fake/perfect" in shown.output
    with_html = speechlab_project.runpytest("suites/test_asr_accuracy.py", "--speechlab-db", str(db), "--html", "r.html")
    assert [line for line in with_html.stdout.lines if line.startswith("next: ")][0].endswith("the evidence: r.html")
