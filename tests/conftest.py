"""Fixtures shared by the project's tests."""
from __future__ import annotations

import pytest

# pytester's in-process runs drop modules first imported during a run from sys.modules. soxr is a
# nanobind extension, and nanobind aborts the process when such a module is imported again;
# SQLAlchemy half re-imported breaks its own class identities. Import them once, up front.
import soxr  # noqa: F401
import sqlalchemy  # noqa: F401

try:  # the same for audiomentations (its numpy-minmax/numpy-rms extensions), where installed
    import audiomentations  # noqa: F401
except ImportError:
    pass

try:  # and for the MLflow sink's client (protobuf registries refuse a second import)
    import mlflow.tracking  # noqa: F401
    import prometheus_client  # noqa: F401
except ImportError:
    pass

from helpers import FAKE_MODEL_CONFTEST, PG_URL, REPO, SMALL_SAMPLES_TOML, fresh_postgres_url, make_fake_dataset


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh results database: a SQLite file, and a new database on the PostgreSQL server that
    .ci/run starts (SPEECHLAB_TEST_POSTGRES_URL; those cases skip, saying so, without one)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    if not PG_URL:
        pytest.skip("no PostgreSQL server: set SPEECHLAB_TEST_POSTGRES_URL (.ci/postgres.sh starts one)")
    return fresh_postgres_url()


@pytest.fixture
def speechlab_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """A pytester project with the fake model in conftest.py, the real suites, and a dataset."""
    monkeypatch.setenv("FAKE_LOAD_LOG", str(pytester.path / "loads.log"))
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(FAKE_MODEL_CONFTEST)
    suites = pytester.mkdir("suites")
    for suite in (REPO / "suites").glob("test_*.py"):
        (suites / suite.name).write_text(suite.read_text())
    make_fake_dataset(pytester.path / "data")
    pytester.makefile(".toml", pyproject="""
[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
speechlab_models = ["fake/perfect"]
speechlab_datasets = ["data/manifest.jsonl"]

[tool.speechlab.thresholds]
wer = 0.10
cer = 0.10
rtf = 100.0
""" + SMALL_SAMPLES_TOML)
    return pytester
