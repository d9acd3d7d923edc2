"""A cache that is never stale and never skips a check: input checks on cached utterances, the
plugin's code in the key, the re-timing audit against a model changed behind the same identity,
and `speechlab cache` to see and clear it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from helpers import REPO, write_audio, write_manifest
from pytest_speechlab.cli import main as speechlab
from pytest_speechlab.sinks.store import Store

N = 40
WORDS = "amber birch cedar delta ember fjord grove harbor island juniper".split()

HIDDEN_CONFTEST = '''
import json, os
from pytest_speechlab import hookimpl, Transcript, Segment

class Hidden:
    """Knows each clip by its length. HIDDEN_DROP (not part of its info()) drops the last word of
    every Nth clip: a model that changed behind the same identity, like a service behind one URL."""
    sample_rate = 16000

    def __init__(self, params):
        self.texts = json.load(open(os.environ["TEXTS_JSON"]))
        self.drop = int(os.environ.get("HIDDEN_DROP", "0"))
        self.sampled = os.environ.get("HIDDEN_SAMPLED") == "1"

    def transcribe(self, audio):
        index, text = self.texts[f"{len(audio) / self.sample_rate:.2f}"]
        if self.drop and index % self.drop == 0:
            text = text.rsplit(" ", 1)[0]
        return Transcript(text, (Segment(0.0, 1.0, text, temperature=0.4 if self.sampled else 0.0),))

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "hidden 1"}

@hookimpl
def speechlab_register_models(register):
    register("fake/hidden", task="asr", load=Hidden, backend="fake")
'''


@pytest.fixture
def hidden(pytester, monkeypatch):
    texts, lines = {}, []
    for i in range(N):
        seconds = 1.0 + 0.05 * i
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
        write_audio(pytester.path / "data" / f"{i}.wav", seconds)
        texts[f"{seconds:.2f}"] = (i, text)
        lines.append({"id": f"u{i:02d}", "audio": f"{i}.wav", "text": text})
    write_manifest(pytester.path / "data" / "manifest.jsonl", lines)
    (pytester.path / "texts.json").write_text(json.dumps(texts))
    for var in ("HIDDEN_DROP", "HIDDEN_SAMPLED", "CI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TEXTS_JSON", str(pytester.path / "texts.json"))
    monkeypatch.setenv("SPEECHLAB_DB", str(pytester.path / "results.db"))
    monkeypatch.chdir(pytester.path)
    pytester.makeconftest(HIDDEN_CONFTEST)
    (pytester.path / "suites").mkdir()
    for suite in ("test_regression.py", "test_asr_accuracy.py", "test_inputs.py"):
        (pytester.path / "suites" / suite).write_text((REPO / "suites" / suite).read_text())
    pytester.makefile(".toml", pyproject="""
[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
speechlab_models = ["fake/hidden"]
speechlab_datasets = ["data/manifest.jsonl"]

[tool.speechlab]
db = "results.db"
retime = 10

[tool.speechlab.thresholds]
wer = 0.5
cer = 0.5
rtf = 1000.0

[tool.speechlab.regression]
rtf_tolerance = 1000.0
""")
    return pytester


def cli(*args: str):
    return CliRunner().invoke(speechlab, list(args), catch_exceptions=False)


def test_a_model_changed_behind_its_identity_is_caught_by_the_audit_and_the_gate_does_not_pass_it(hidden, monkeypatch):
    hidden.runpytest("suites").assert_outcomes(passed=3)
    cli("baseline", "set", "main", "latest")
    monkeypatch.setenv("HIDDEN_DROP", "3")  # 14 of 40 clips lose a word; info() says nothing
    gated = hidden.runpytest("suites", "--speechlab-baseline", "main", "--speechlab-fail-on-regression")
    text = gated.stdout.str()
    gated.assert_outcomes(passed=3, failed=1)
    assert "of 10 re-computed outputs of fake/hidden differ from their cached ones without sampling" in text
    assert "stale (the model changed behind the same identity) and were recomputed in this session" in text
    assert "regression against the baseline: WER 0.0000 -> 0.0583" in text
    assert "outputs from the cache" not in text  # all recomputed, none scored from the stale cache
    store = Store(f"sqlite:///{hidden.path / 'results.db'}", read_only=True)
    latest = store.run(store.resolve("latest"))
    audit = latest["aggregates"][0]["metrics"]["cache_audit"]
    assert audit["compared"] == 10 and audit["stale"] >= 1 and audit["sampled_differed"] == 0
    # the recomputed outputs replaced the stale ones: a third session hits them and agrees
    again = hidden.runpytest("suites", "--speechlab-baseline", "main", "--speechlab-fail-on-regression")
    again.assert_outcomes(passed=3, failed=1)
    assert "40 outputs from the cache, 0 computed" in again.stdout.str()
    assert "outputs are stale" not in again.stdout.str()


def test_a_difference_where_sampling_was_used_is_nondeterminism_not_staleness(hidden, monkeypatch):
    monkeypatch.setenv("HIDDEN_SAMPLED", "1")
    hidden.runpytest("suites").assert_outcomes(passed=3)
    monkeypatch.setenv("HIDDEN_DROP", "3")
    second = hidden.runpytest("suites")
    assert "outputs are stale" not in second.stdout.str()
    store = Store(f"sqlite:///{hidden.path / 'results.db'}", read_only=True)
    audit = store.run(store.resolve("latest"))["aggregates"][0]["metrics"]["cache_audit"]
    assert audit["stale"] == 0 and audit["sampled_differed"] >= 1


def test_input_checks_run_on_cached_utterances(hidden):
    hidden.runpytest("suites").assert_outcomes(passed=3)
    manifest = hidden.path / "data" / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    lines[3]["duration"] = 9.5  # the clip is 1.15 s
    write_manifest(manifest, lines)
    second = hidden.runpytest("suites")
    second.assert_outcomes(passed=2, failed=1)
    text = second.stdout.str()
    assert "1 input error(s)" in text
    assert "line 4: audio '3.wav': decoded length 1.15 s differs from the declared duration 9.50 s" in text
    assert "39 outputs from the cache" in text  # the others still hit, and were scored


THROWAWAY_SETUP = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "speechlab-throwaway-echo"
version = "0.0.1"

[project.entry-points.speechlab]
throwaway-echo = "speechlab_throwaway_echo"

[tool.setuptools]
packages = ["speechlab_throwaway_echo"]
"""

THROWAWAY_MODULE = '''
from pytest_speechlab import hookimpl, Transcript

SUFFIX = ""

class Echo:
    sample_rate = 16000

    def transcribe(self, audio):
        return Transcript(f"{len(audio) / 16000:.2f} seconds" + SUFFIX)

@hookimpl
def speechlab_register_models(register):
    register("throwaway/echo", task="asr", load=lambda params: Echo(), backend="throwaway")
'''

SESSION = """
import sys
from pytest_speechlab import evaluate_models
from pytest_speechlab.engine.pipeline import Engine
from pytest_speechlab._config import SpeechlabConfig
from pytest_speechlab.engine.cache import plugin_code
(r,) = evaluate_models(["throwaway/echo"], [sys.argv[1]], pyproject=None, db=sys.argv[2])
code = plugin_code(Engine(SpeechlabConfig(), ".", db_url=None).registry.model("throwaway/echo").load)
print(code["distribution"], code["version"], code["files"])
print(r.cached_count, r.utterances[0].hypothesis)
"""


def test_an_edited_plugin_installed_editable_misses_the_cache(tmp_path):
    package = tmp_path / "plugin"
    (package / "speechlab_throwaway_echo").mkdir(parents=True)
    (package / "pyproject.toml").write_text(THROWAWAY_SETUP)
    source = package / "speechlab_throwaway_echo" / "__init__.py"
    source.write_text(THROWAWAY_MODULE)
    write_audio(tmp_path / "a.wav", 1.0)
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav", "text": "one seconds"}])
    db = str(tmp_path / "results.db")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    installed = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(package)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr

    def session() -> str:
        out = subprocess.run([sys.executable, "-c", SESSION, str(manifest), db], capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-2] == "speechlab-throwaway-echo 0.0.1 1"  # part of the key
        return out.stdout.strip().splitlines()[-1]

    try:
        assert session() == "0 1.00 seconds"  # computed
        assert session() == "1 1.00 seconds"  # from the cache
        source.write_text(THROWAWAY_MODULE.replace('SUFFIX = ""', 'SUFFIX = " edited"'))  # no reinstall: editable
        assert session() == "0 1.00 seconds edited"  # the edit missed the cache
        rows = Store(f"sqlite:///{db}", read_only=True).cache_summary()
        assert [(r["model"], r["entries"]) for r in rows] == [("throwaway/echo", 2)]
    finally:
        subprocess.run([*pip, "uninstall", "-y", "speechlab-throwaway-echo"], capture_output=True)


def test_plugin_code_names_the_distribution_and_digests_its_files():
    from pytest_speechlab.engine.cache import plugin_code
    from pytest_speechlab import evaluate_models  # any function of the package

    code = plugin_code(evaluate_models)
    assert code["module"] == "pytest_speechlab" and code["distribution"] == "pytest-speechlab"
    assert code["version"] and len(code["source_sha256"]) == 64 and code["files"] > 20
    assert plugin_code(lambda params: None)["module"] == "test_cache_audit"


def test_speechlab_cache_lists_clears_and_prunes(hidden):
    hidden.runpytest("suites").assert_outcomes(passed=3)
    listing = cli("cache")
    assert listing.exit_code == 0
    assert "fake/hidden" in listing.output and f"{N} outputs" in listing.output
    assert cli("cache", "prune", "--older-than", "1", "--yes").output.startswith("deleted 0 cached outputs")
    assert cli("cache", "clear", "--model", "other", "--yes").output.startswith("deleted 0")
    assert cli("cache", "clear", "--model", "fake/hidden", "--yes").output.startswith(f"deleted {N} cached outputs")
    assert "the inference cache is empty" in cli("cache").output
    refused = CliRunner().invoke(speechlab, ["cache", "clear"], input="n\n")
    assert refused.exit_code == 2 and "nothing deleted" in refused.output
    assert CliRunner().invoke(speechlab, ["cache", "prune", "--older-than", "-1", "--yes"]).exit_code == 2
