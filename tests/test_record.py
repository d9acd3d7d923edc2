"""One run format and one failure policy for the sinks: ``speechlab import`` reads what
``--speechlab-json`` writes, a sink that raises (a plugin's ``speechlab_write_results``) costs no other
sink its data, and a set of one kind given where another is expected is one clear error."""
from __future__ import annotations

import json

from click.testing import CliRunner

from pytest_speechlab.cli import main as speechlab
from pytest_speechlab.sinks.store import Store

def test_speechlab_import_reads_the_run_file(speechlab_project, tmp_path):
    result = speechlab_project.runpytest("suites", "--speechlab-json", "run.json")
    assert result.ret == 0
    written = json.loads((speechlab_project.path / "run.json").read_text())
    assert written["format"] == "pytest-speechlab-results/2" and written["run"]["id"] == written["meta"]["run_id"]
    other = tmp_path / "other.db"
    imported = CliRunner().invoke(speechlab, ["--db", str(other), "import", str(speechlab_project.path / "run.json"),
                                              "--baseline", "main"])
    assert imported.exit_code == 0, imported.output
    store = Store(f"sqlite:///{other}", read_only=True)
    run_id = store.resolve("main")
    assert run_id == written["meta"]["run_id"]
    source = Store(f"sqlite:///{speechlab_project.path / '.speechlab' / 'results.db'}", read_only=True)
    assert len(store.utterances(run_id)) == len(source.utterances(run_id)) > 0
    figures = {a["dataset"]: a["metrics"]["wer"] for a in store.run(run_id)["aggregates"]}
    assert figures == {e["summary"]["dataset"]: e["summary"]["wer"] for e in written["evaluations"]}


def test_a_run_file_without_a_recorded_run_is_a_clear_import_error(speechlab_project, tmp_path):
    assert speechlab_project.runpytest("suites", "--speechlab-no-db", "--speechlab-json", "run.json").ret == 0
    refused = CliRunner().invoke(speechlab, ["--db", str(tmp_path / "x.db"), "import",
                                             str(speechlab_project.path / "run.json")])
    assert refused.exit_code != 0 and "holds no recorded run" in refused.output
    assert "Traceback" not in refused.output


def test_a_sink_that_raises_costs_no_other_sink_its_data(speechlab_project):
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + '''

@hookimpl
def speechlab_write_results(results):
    raise RuntimeError("dashboard down (password=s3cret)")
''')
    speechlab_project.makepyfile(collector='''
import json
import pathlib

from pytest_speechlab import hookimpl


@hookimpl
def speechlab_write_results(results):
    pathlib.Path("collected.json").write_text(json.dumps({"format": results["format"], "run": results["run"]["id"]}))
''')
    speechlab_project.syspathinsert()
    result = speechlab_project.runpytest("suites", "--speechlab-json", "run.json", "--speechlab-markdown", "card.md",
                                         "-p", "collector")
    out = result.stdout.str()
    assert "(speechlab_write_results): not written (RuntimeError: dashboard down (password=***))" in out
    assert "s3cret" not in out
    assert result.ret == 1  # a sink that failed fails the session, as a report file that was not written
    run = json.loads((speechlab_project.path / "run.json").read_text())
    assert run["evaluations"] and "fake/perfect" in (speechlab_project.path / "card.md").read_text()
    assert json.loads((speechlab_project.path / "collected.json").read_text()) == {
        "format": "pytest-speechlab-results/2", "run": run["meta"]["run_id"]}
    store = Store(f"sqlite:///{speechlab_project.path / '.speechlab' / 'results.db'}", read_only=True)
    assert store.run(run["meta"]["run_id"])["status"] == "complete"


def test_a_set_of_the_wrong_kind_is_one_clear_error(speechlab_project):
    result = speechlab_project.runpytest("suites", "--speechlab-dataset", "speechlab/tts-texts")
    assert result.ret == 4  # a usage error, not 24 line errors
    assert ("'speechlab/tts-texts' is a TTS text set, not a speech set: name it in [tool.speechlab.tts] texts"
            in result.stderr.str())
