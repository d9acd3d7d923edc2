"""An MLflow sink (``--speechlab-mlflow TRACKING_URI``, the ``[mlflow]`` extra): one MLflow run per
pytest-speechlab run, in an experiment (``--speechlab-mlflow-experiment``, default
"pytest-speechlab"), with

- parameters: each model's identity (backend, version, weights digest, load and decode parameters),
  the datasets, the normalizer, the commit;
- metrics: each model x dataset's figures as ``MODEL/DATASET/FIGURE`` (wer, its interval's ends,
  cer, error_rate, rtf, hallucination_rate, utterances), each chat evaluation's pass rate;
- tags: the speechlab run id, commit, grades;
- artifacts: the reports (the run file, the Markdown scorecard, the benchmark JSON, the
  OpenMetrics file), written to a temporary folder and logged from there.

MLflow's names allow letters, digits, ``_ - . / :`` and spaces: anything else in a model or dataset
name becomes ``_`` (the exact names are in the parameters and artifacts). A plain path or
``file:`` URI is MLflow's file store, which MLflow 3 refuses unless ``MLFLOW_ALLOW_FILE_STORE`` is
set: this sink sets it for such a URI (the user asked for that store). The tracking URI is never
logged; a password in it is redacted from every message.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

from .._text import redact, terminal
from ..metrics.stats import interval, number

DEFAULT_EXPERIMENT = "pytest-speechlab"
_UNSAFE = re.compile(r"[^\w\-./: ]")
FIGURES = ("wer", "cer", "error_rate", "rtf", "hallucination_rate", "utterances", "processed")
INTERVALS = (("wer_ci", "wer"), ("cer_ci", "cer"), ("hallucination_ci", "hallucination_rate"))


def metric_key(*parts: object) -> str:
    return "/".join(_UNSAFE.sub("_", terminal(str(p), one_line=True))[:200] for p in parts)


def metrics_of(records: list[dict], chats=()) -> dict[str, float]:
    """The metrics logged for these evaluations, by key."""
    found: dict[str, float] = {}
    for record in records:
        s = record["summary"]
        for key in FIGURES:
            value = number(s.get(key))
            if value is not None:
                found[metric_key(s["model"], s["dataset"], key)] = value
        for ci_key, name in INTERVALS:
            ci = interval(s.get(ci_key))
            if ci:
                found[metric_key(s["model"], s["dataset"], f"{name}_ci_lower")] = ci[0]
                found[metric_key(s["model"], s["dataset"], f"{name}_ci_upper")] = ci[1]
    for chat in chats:
        s = chat["summary"]
        checked, passed = number(s.get("checked")), number(s.get("passed"))
        if checked:
            found[metric_key(s.get("model"), s.get("prompts"), "chat_pass_rate")] = passed / checked
    return found


def params_of(records: list[dict], chats=(), meta: dict | None = None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in [*records, *chats]:
        info = item.get("model_info") or {}
        name = (item.get("summary") or {}).get("model") or info.get("name")
        for key in ("backend", "backend_version", "weights_sha256", "params"):
            if info.get(key) not in (None, "", {}):
                value = info[key] if isinstance(info[key], str) else json.dumps(info[key], sort_keys=True, default=str)
                params[metric_key("model", name, key)] = redact(value)[:6000]
    datasets = sorted({r["summary"]["dataset"] for r in records})
    if datasets:
        params["datasets"] = redact(", ".join(datasets))[:6000]
    for key, value in (meta or {}).items():
        if value is not None:
            params[metric_key(key)] = redact(value)[:6000]
    return params


def _tracking_uri(uri: str) -> str:
    """A plain path is MLflow's file store (as a file: URI); either turns the file store on."""
    if "://" not in uri and not uri.startswith("file:"):
        uri = Path(uri).resolve().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def log_run(uri: str, experiment: str, records: list[dict], grades: dict, chats=(), meta: dict | None = None,
            reports: dict[str, str] | None = None, failed: bool = False) -> str:
    """Log one run; returns the MLflow run id. ``reports``: file name -> text, logged as artifacts."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise RuntimeError("the MLflow sink needs the [mlflow] extra: pip install 'pytest-speechlab[mlflow]'") from None
    meta = dict(meta or {})
    client = MlflowClient(tracking_uri=_tracking_uri(uri))
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    speechlab_id = str(meta.get("run_id") or "")
    run = client.create_run(experiment_id, run_name=f"speechlab {speechlab_id[:8]}".strip(), tags={
        "speechlab.run_id": speechlab_id, "speechlab.git_commit": str(meta.get("git_commit") or ""),
        **{metric_key("speechlab.grade", m): terminal(getattr(g, "grade", g), one_line=True) for m, g in grades.items()}})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in metrics_of(records, chats).items()]
        params = [Param(k, v) for k, v in params_of(records, chats, meta).items()]
        for start in range(0, max(len(metrics), len(params), 1), 100):  # MLflow's batch limits
            client.log_batch(run_id, metrics=metrics[start:start + 100], params=params[start:start + 100],
                             tags=[RunTag("speechlab.sink", "pytest-speechlab")] if start == 0 else [])
        with tempfile.TemporaryDirectory(prefix="speechlab-mlflow-") as folder:
            for name, text in (reports or {}).items():
                (Path(folder) / name).write_text(text, encoding="utf-8")
            if reports:
                client.log_artifacts(run_id, folder, artifact_path="reports")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
    return run_id
