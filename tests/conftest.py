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


# -- test tiers ------------------------------------------------------------------------------------
# Every test's markers are assigned here, in one place. real_model: loads packaged weights (or
# converts them); services: starts a real server; browser: drives Chromium; postgres: needs the
# PostgreSQL server; e2e: runs pytest itself (pytester or a subprocess); slow: outside the fast tier,
# `pytest tests/ -m "not slow"` (README). Where a test lands was read from CI's --durations.
REAL_MODEL_MODULES = {"test_real_models", "test_parallel_real", "test_ct2whisper", "test_quality"}
REAL_MODEL_TESTS = {
    "test_cross_runtime.py::test_suite_runs_the_three_runtimes_on_real_weights",
    "test_longform.py::test_the_long_form_suite_on_the_ten_minute_fixture_with_faster_whisper",
    "test_longform.py::test_the_long_form_suite_on_a_three_minute_build_with_the_torch_backends",
    "test_robustness.py::test_the_shipped_properties_hold_for_tiny_en_on_the_fixtures",
    "test_tts_chat.py::test_real_tts_models_are_intelligible_to_the_real_judge",
    "test_tts_chat.py::test_real_chat_model_answers_and_streams",
}
SERVICE_MODULES = {"test_services"}
SLOW_TESTS = {  # long simulations, busy-machine runs, an editable install (7-22 s each in CI)
    "test_stats.py::test_whole_gate_false_alarm_rate_is_at_most_alpha",
    "test_stats.py::test_without_correction_false_alarms_grow_with_the_family",
    "test_stats.py::test_gate_power_for_a_two_point_regression_in_a_family_of_ten",
    "test_cache_audit.py::test_an_edited_plugin_installed_editable_misses_the_cache",
    "test_honest_speed.py::test_the_main_job_on_a_busy_machine_does_not_judge_speed",
    "test_tiers.py::test_every_test_the_tiers_name_exists_and_every_test_has_a_tier",  # collects three times
    "test_tts_chat.py::test_tts_and_chat_run_in_workers_and_on_ray_cached_with_the_serial_figures",  # 3 runs, Ray
    "test_hardening.py::test_a_gigabyte_line_in_a_small_gzip_is_one_error_read_in_bounded_memory",  # writes 1.2 GB
    "test_hardening.py::test_with_isolate_a_model_that_kills_its_process_loses_only_that_utterance",  # 3 spawns
    "test_hardening.py::test_the_sessions_own_ray_refuses_a_process_without_its_token",  # starts Ray
    "test_listening.py::test_a_mushra_test_and_the_listeners_beside_dnsmos_in_every_report",  # DNSMOS, 2 spawns
}
TIERS = ("unit", "e2e", "real_model", "services", "browser", "postgres", "slow")


def pytest_configure(config):
    for marker, what in (("unit", "in-process, no model weights, no server"),
                         ("e2e", "runs pytest itself (pytester or a subprocess)"),
                         ("real_model", "loads packaged model weights"),
                         ("services", "starts a real model server on 127.0.0.1"),
                         ("browser", "drives headless Chromium"),
                         ("postgres", "needs the PostgreSQL server (SPEECHLAB_TEST_POSTGRES_URL)"),
                         ("slow", "outside the fast tier (pytest tests/ -m 'not slow')")):
        config.addinivalue_line("markers", f"{marker}: {what}")


def tiers_of(item) -> set[str]:
    """The markers of one collected test (see TIERS)."""
    module, name = item.path.stem, f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
    fixtures = set(getattr(item, "fixturenames", ()))
    marks = set()
    if module in REAL_MODEL_MODULES or name in REAL_MODEL_TESTS:
        marks.add("real_model")
    if module in SERVICE_MODULES:
        marks.add("services")
    if fixtures & {"page", "browser"} or item.get_closest_marker("skipif") and "Chromium" in str(
            item.get_closest_marker("skipif").kwargs.get("reason", "")):
        marks.add("browser")
    if "db_url" in fixtures and "postgresql" in item.name:
        marks.add("postgres")
    if fixtures & {"pytester", "speechlab_project", "tts_chat_project", "tone_project"}:
        marks.add("e2e")
    marks = marks or {"unit"}
    if marks & {"real_model", "services", "browser"} or name in SLOW_TESTS:
        marks.add("slow")
    return marks


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in sorted(tiers_of(item)):
            item.add_marker(marker)
