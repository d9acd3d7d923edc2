"""Command-line options and ini values of pytest-speechlab."""
from __future__ import annotations

import pytest

from .._types import CACHE_MODES
from ..engine.features import FEATURES

DEFAULT_MODELS = ["faster-whisper/tiny.en"]
DEFAULT_DATASETS = ["speechlab/speech", "speechlab/nonspeech"]

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("speechlab", "speech model evaluation (pytest-speechlab)")
    for feature in FEATURES:  # each feature's own options, declared with it
        for flags, kwargs in feature.options:
            group.addoption(*flags, **kwargs)
    group.addoption(
        "--speechlab-model", action="append", default=[], metavar="NAME", dest="speechlab_models",
        help="model to evaluate (repeatable); overrides the speechlab_models ini value. "
        f"Default: {', '.join(DEFAULT_MODELS)}.",
    )
    group.addoption(
        "--speechlab-dataset", action="append", default=[], metavar="NAME_OR_PATH",
        dest="speechlab_datasets",
        help="dataset: a registered name, a JSONL manifest or a LibriSpeech-layout folder "
        "(repeatable); overrides the speechlab_datasets ini value. "
        f"Default: {', '.join(DEFAULT_DATASETS)}.",
    )
    group.addoption(
        "--speechlab-list-models", action="store_true", default=False,
        help="list registered models and datasets (name, task, backend, plugin, weights) and exit.",
    )
    group.addoption(
        "--speechlab-min-grade", metavar="GRADE", default=None,
        help="readiness tests fail for a model graded below GRADE (A+, A, B, C, D, F); "
        "default: [tool.speechlab.grades] min_grade.",
    )
    group.addoption(
        "--speechlab-repeat", metavar="N", type=int, default=None,
        help="decode every utterance N times and score every repeat: the share whose transcript "
        "changes, each figure's mean and range, and verdicts that depend on the run said as such "
        "(only the first run is timed); default: [tool.speechlab] repeats, else 1.",
    )
    group.addoption(
        "--speechlab-db", metavar="URL_OR_PATH", default=None,
        help="results database: a SQLAlchemy URL (postgresql+psycopg://...) or a SQLite file. "
        "Default: [tool.speechlab] db, else .speechlab/results.db under the rootdir.",
    )
    group.addoption(
        "--speechlab-no-db", action="store_true", default=False,
        help="do not record this run in the results database.",
    )
    group.addoption(
        "--speechlab-markdown", metavar="PATH", default=None,
        help="write the scorecard as Markdown (also appended to $GITHUB_STEP_SUMMARY when set).",
    )
    group.addoption(
        "--speechlab-benchmark-json", metavar="PATH", default=None,
        help="write a pytest-benchmark JSON file: per-utterance inference times per model x dataset, "
        "speech figures in extra_info (pytest-benchmark compare reads it).",
    )
    group.addoption(
        "--speechlab-json", metavar="PATH", default=None,
        help="write every per-utterance output and metric of this run as JSON.",
    )
    group.addoption(
        "--speechlab-openmetrics", metavar="PATH", default=None,
        help="write the run's figures in the Prometheus text format (node_exporter's textfile "
        "collector), atomically.",
    )
    group.addoption(
        "--speechlab-mlflow", metavar="TRACKING_URI", default=None,
        help="log the run to MLflow (the [mlflow] extra): parameters, figures per model x dataset, the "
        "reports as artifacts. A path or file: URI is a local file store. Default: $SPEECHLAB_MLFLOW.",
    )
    group.addoption(
        "--speechlab-mlflow-experiment", metavar="NAME", default="pytest-speechlab",
        help="the MLflow experiment (created when missing). Default: pytest-speechlab.",
    )
    group.addoption(
        "--speechlab-progress", choices=("auto", "bar", "lines", "off"), default="auto",
        help="progress of long evaluations: a bar on a terminal, a line every 15 s in logs "
        "(auto picks by whether output is a terminal).",
    )
    group.addoption(
        "--speechlab-cache", choices=CACHE_MODES, default=None,
        help="the inference cache (in the results database): on (default: reuse outputs, store new "
        "ones), off, refresh (recompute and replace), read-only (reuse, never write); "
        "default: [tool.speechlab] cache.",
    )
    group.addoption(
        "--speechlab-retime", metavar="N", type=int, default=None,
        help="when an evaluation's outputs come from the inference cache, time N of its utterances again "
        "here for the speed checks; 0: no re-timing, and the speed checks on cached outputs are skipped as "
        "not judged (never passed on cached timings); default: [tool.speechlab] retime, else 20.",
    )
    group.addoption(
        "--speechlab-workers", metavar="N", type=int, default=1,
        help="run each evaluation's model calls in N worker processes (or N Ray actors), each building "
        "the model once with its share of the CPU threads; default 1 (in this process). Use this, "
        "not pytest-xdist, to evaluate in parallel.",
    )
    group.addoption(
        "--speechlab-isolate", action="store_true", default=False,
        help="run the model in a worker process even with one worker: a model that crashes the process "
        "(os._exit, a segfault) loses only the utterance it was on (retried on a new worker, then failed "
        "with the reason) and the session writes its reports; costs a second load of the model. "
        "Default: [tool.speechlab] isolate, else off.",
    )
    group.addoption(
        "--speechlab-threads", metavar="N", type=int, default=None,
        help="CPU threads per model (per worker with --speechlab-workers); default: the model's own "
        "choice in this process, the CPUs shared equally among workers.",
    )
    group.addoption(
        "--speechlab-properties", action="store_true", default=False,
        help="run the metamorphic property suites (hypothesis draws perturbations of each speech "
        "dataset's three shortest clips; $SPEECHLAB_PROPERTY_EXAMPLES examples per property, default 10).",
    )
    group.addoption(
        "--speechlab-executor", choices=("local", "ray"), default="local",
        help="where the workers run: local processes, or Ray actors (pip install \"pytest-speechlab[ray]\").",
    )
    group.addoption(
        "--speechlab-ray-address", metavar="ADDRESS", default=None,
        help="the Ray cluster for --speechlab-executor ray (ray://host:10001, or auto); default: a local "
        "Ray started for the session and stopped after it.",
    )
    group.addoption(
        "--speechlab-ray-audio", choices=("ship", "shared"), default="ship",
        help="ship: the session sends each clip with its unit (no shared storage needed; the default); "
        "shared: units carry paths, which every Ray node reads from storage mounted at the same place.",
    )
    parser.addini("speechlab_models", "models evaluated when no --speechlab-model is given",
                  type="linelist", default=[])
    parser.addini("speechlab_datasets", "datasets evaluated when no --speechlab-dataset is given "
                  "(paths relative to the rootdir)", type="linelist", default=[])
