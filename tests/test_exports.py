"""Metrics leave the project: the OpenMetrics file (parsed back with prometheus-client's own
parser) and the MLflow sink (read back through MLflow's client from a local file store), each with
the same figures as the run file of the same run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytest_speechlab._text import terminal
from pytest_speechlab.sinks import openmetrics


def _families(path: Path) -> dict:
    return {f.name: f for f in text_string_to_metric_families(path.read_text())}


def _summary(run_file: Path) -> dict:
    data = json.loads(run_file.read_text())
    (record,) = data["evaluations"]
    return data, record["summary"]


def test_openmetrics_file_parses_with_the_run_figures(speechlab_project):
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace('"hello world"', '"hello word"'))  # one error
    result = speechlab_project.runpytest("suites", "--speechlab-openmetrics", "metrics.prom", "--speechlab-json", "run.json")
    assert result.ret in (0, 1)
    data, s = _summary(speechlab_project.path / "run.json")
    families = _families(speechlab_project.path / "metrics.prom")
    labels = {"model": "fake/perfect", "dataset": s["dataset"]}

    def value(name):
        (sample,) = [x for x in families[name].samples if x.labels == labels]
        return sample.value

    assert value("speechlab_wer") == pytest.approx(s["wer"]) and s["wer"] > 0
    assert value("speechlab_wer_ci_lower") == pytest.approx(s["wer_ci"][0])
    assert value("speechlab_wer_ci_upper") == pytest.approx(s["wer_ci"][1])
    assert value("speechlab_cer") == pytest.approx(s["cer"])
    assert value("speechlab_rtf") == pytest.approx(s["rtf"])
    assert value("speechlab_hallucination_rate") == pytest.approx(s["hallucination_rate"])
    assert value("speechlab_utterances") == s["utterances"]
    grade = [x for x in families["speechlab_grade_info"].samples if x.labels.get("model") == "fake/perfect"]
    assert grade and grade[0].labels["grade"] == data["scorecard"][0]["grade"]
    run = families["speechlab_run_info"].samples[0].labels
    assert run["run_id"] == data["meta"]["run_id"]
    assert not any(name.endswith("_created") for name in families)  # gauges only
    assert not list(speechlab_project.path.glob(".metrics.prom*"))  # written atomically, nothing left over


def test_openmetrics_labels_keep_hostile_names_inside_their_quotes(tmp_path):
    hostile = 'evil"} speechlab_wer{model="x"} 0\n# HELP injected\n\x1b[31m'
    record = {"summary": {"model": hostile, "dataset": "d\\\n", "wer": 0.25, "wer_ci": [0.1, 0.4], "utterances": 3}}
    path = tmp_path / "m.prom"
    openmetrics.write(str(path), [record], {hostile: "B"})
    families = _families(path)
    (sample,) = families["speechlab_wer"].samples
    assert sample.value == 0.25 and sample.labels["dataset"] == terminal("d\\\n", one_line=True) == "d\\\\x0a"
    assert sample.labels["model"].startswith('evil"} speechlab_wer{model="x"} 0\\x0a# HELP injected')
    assert "\x1b" not in path.read_text()  # control characters shown as escapes
    assert "injected" not in families  # no family was injected


def test_mlflow_run_reads_back_with_the_same_figures(speechlab_project, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = speechlab_project.path / "mlruns"
    result = speechlab_project.runpytest("suites", "--speechlab-mlflow", str(store), "--speechlab-mlflow-experiment",
                                         "asr-gate", "--speechlab-json", "run.json")
    assert result.ret == 0, result.stdout.str()[-3000:]
    data, s = _summary(speechlab_project.path / "run.json")
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name("asr-gate")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["speechlab.run_id"] == data["meta"]["run_id"]
    prefix = f"fake/perfect/{s['dataset']}"
    metrics = run.data.metrics
    assert metrics[f"{prefix}/wer"] == pytest.approx(s["wer"])
    assert metrics[f"{prefix}/wer_ci_upper"] == pytest.approx(s["wer_ci"][1])
    assert metrics[f"{prefix}/cer"] == pytest.approx(s["cer"])
    assert metrics[f"{prefix}/rtf"] == pytest.approx(s["rtf"])
    assert metrics[f"{prefix}/hallucination_rate"] == pytest.approx(s["hallucination_rate"])
    assert metrics[f"{prefix}/utterances"] == s["utterances"]
    assert run.data.params["model/fake/perfect/backend"] == "fake"
    assert s["dataset"] in run.data.params["datasets"]
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "reports"))
    assert artifacts == ["reports/benchmark.json", "reports/metrics.prom", "reports/results.json", "reports/scorecard.md"]
    local = client.download_artifacts(run.info.run_id, "reports/results.json", str(speechlab_project.path / "dl"))
    assert json.loads(Path(local).read_text())["evaluations"][0]["summary"] == s


def test_an_mlflow_failure_is_said_and_loses_nothing(speechlab_project):
    result = speechlab_project.runpytest("suites", "--speechlab-mlflow", "bogus://user:hunter2@tracking.invalid/",
                                         "--speechlab-json", "run.json")
    out = result.stdout.str()
    assert "--speechlab-mlflow bogus://user:***@tracking.invalid/: not written" in out
    assert "hunter2" not in out
    assert result.ret == 1  # the report problem fails the session, as any report that was not written
    assert json.loads((speechlab_project.path / "run.json").read_text())["evaluations"]  # the rest was written
    assert "recorded as run" in out
