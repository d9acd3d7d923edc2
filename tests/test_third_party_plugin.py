"""A throwaway third-party model plugin, pip-installed into this environment: listed and evaluated."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from helpers import REPO, SMALL_SAMPLES_TOML, make_fake_dataset


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


@pytest.fixture
def installed_plugin(tmp_path):
    """Build and install ``speechlab-throwaway-<id>`` (entry point group ``speechlab``); uninstall after."""
    suffix = uuid.uuid4().hex[:8]
    dist, module = f"speechlab-throwaway-{suffix}", f"speechlab_throwaway_{suffix}"
    src = tmp_path / "src"
    (src / module).mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.0.1"

        [project.entry-points.speechlab]
        throwaway = "{module}"

        [tool.setuptools]
        packages = ["{module}"]
    """))
    (src / module / "__init__.py").write_text(textwrap.dedent("""
        from pytest_speechlab import Transcript, hookimpl

        class Echo:
            sample_rate = 16000

            def transcribe(self, audio):
                seconds = len(audio) / self.sample_rate
                return Transcript({1.0: "the cat sat on the mat", 2.0: "hello world"}.get(round(seconds, 2), "fox"))

        @hookimpl
        def speechlab_register_models(register):
            register("throwaway/echo", task="asr", load=lambda params: Echo(), backend="echo",
                     weights="none (a test double)")
    """))
    done = pip("install", "--no-deps", "-q", str(src))
    assert done.returncode == 0, done.stderr
    yield dist
    pip("uninstall", "-y", "-q", dist)


def run_pytest(cwd, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("CI", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_installed_plugin_is_listed_and_evaluated(installed_plugin, tmp_path):
    listing = run_pytest(tmp_path, "--speechlab-list-models")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "throwaway/echo" in line)
    entry = "\n".join(lines[at:at + 4])  # the table row, then its plugin, weights and params
    assert f"plugin: {installed_plugin}" in entry and "echo" in entry and "a test double" in entry

    manifest = make_fake_dataset(tmp_path / "data")
    suites = tmp_path / "suites"
    suites.mkdir()
    for suite in (REPO / "suites").glob("test_*.py"):
        (suites / suite.name).write_text(suite.read_text())
    (tmp_path / "pyproject.toml").write_text(SMALL_SAMPLES_TOML)
    run = run_pytest(tmp_path, "suites", "--speechlab-model", "throwaway/echo", "--speechlab-dataset", str(manifest))
    # echo gets 'a quick brown fox' as 'fox': 3 deletions in 12 words, WER 0.25 > default 0.20
    assert "corpus WER 0.2500 > threshold 0.2000 for throwaway/echo" in run.stdout, run.stdout + run.stderr
    summary = run.stdout.split("speechlab summary", 1)[1]
    assert "throwaway/echo" in summary and "0.250" in summary
