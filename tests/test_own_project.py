"""Using pytest-speechlab in a project of one's own, outside this repository: the standard suites
run from the installed package (--pyargs) or from `speechlab init`'s copy, and an empty collection
says how to get them."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import FAKE_MODEL_CONFTEST, REPO, SMALL_SAMPLES_TOML, make_fake_dataset
from pytest_speechlab.cli import main as speechlab
from pytest_speechlab._config import load_config


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project folder, outside the repository: a local model in conftest.py and a dataset."""
    root = tmp_path / "my-project"
    root.mkdir()
    (root / "conftest.py").write_text(FAKE_MODEL_CONFTEST)
    make_fake_dataset(root / "data")
    monkeypatch.setenv("FAKE_LOAD_LOG", str(root / "loads.log"))
    monkeypatch.delenv("CI", raising=False)
    assert REPO not in root.parents
    return root


def run_pytest(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=root,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_the_shipped_suites_run_with_pyargs(project):
    out = run_pytest(project, "--pyargs", "pytest_speechlab.suites", "--speechlab-model", "fake/perfect",
                     "--speechlab-dataset", "data/manifest.jsonl", "-rs")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    # three speech clips and one silence: shown, but too few to judge by the default minimum samples
    assert "2 passed, 5 skipped" in out.stdout
    assert "not judged: too few to judge (n = 3 < 10)" in out.stdout and "graded n/a: error rates not judged" in out.stdout
    assert "speechlab summary" in out.stdout and (project / ".speechlab" / "results.db").is_file()


def test_speechlab_init_writes_the_suites_and_a_configuration_that_loads(project):
    result = CliRunner().invoke(speechlab, ["init", str(project)])
    assert result.exit_code == 0, result.output
    shipped = sorted(p.name for p in (REPO / "suites").glob("test_*.py"))
    assert sorted(p.name for p in (project / "suites").glob("test_*.py")) == shipped
    config = load_config(project / "pyproject.toml")  # the commented block is valid configuration
    assert config.thresholds["wer"] == 0.20 and config.normalizer == "speechlab-english"
    again = CliRunner().invoke(speechlab, ["init", str(project)])
    assert "kept" in again.output and "already has a [tool.speechlab] table" in again.output
    with open(project / "pyproject.toml", "a") as fh:  # judged on the fake dataset's 3 clips
        fh.write(SMALL_SAMPLES_TOML)
    out = run_pytest(project, "suites", "--speechlab-model", "fake/perfect", "--speechlab-dataset", "data/manifest.jsonl")
    assert out.returncode == 0, out.stdout[-3000:]
    assert "6 passed, 1 skipped" in out.stdout


def test_an_empty_collection_says_where_the_suites_are(project):
    out = run_pytest(project, "--speechlab-model", "fake/perfect")
    assert out.returncode == 5
    assert "pytest --pyargs pytest_speechlab.suites" in out.stdout and "speechlab init" in out.stdout


def test_the_wheel_ships_the_suites(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("pytest_speechlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for suite in (REPO / "suites").glob("*.py"):
        assert f"pytest_speechlab/suites/{suite.name}" in names
