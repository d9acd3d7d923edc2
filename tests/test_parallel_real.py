"""Worker processes and Ray actors give the serial transcripts on the project's fixtures, with the
real tiny.en. Ray runs inside a network namespace of its own (loopback only), so that the local
cluster it starts is reachable from nowhere else."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import REPO
from pytest_speechlab import evaluate_models

pytest.importorskip("speechlab_faster_whisper")
MODEL, DATASET = "faster-whisper/tiny.en", "speechlab/speech"
SCRIPT = """
import json, sys
from pytest_speechlab import evaluate_models
(r,) = evaluate_models([{model!r}], [{dataset!r}], pyproject=None, workers=2, threads=1, executor=sys.argv[1])
json.dump({{"texts": {{u.utterance.id: u.hypothesis for u in r.utterances}},
           "workers": sorted({{u.worker for u in r.utterances}}), "threads": sorted({{u.threads for u in r.utterances}}),
           "throughput": r.throughput, "environment": r.environment}}, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def serial():
    (result,) = evaluate_models([MODEL], [DATASET], pyproject=None)
    return {u.utterance.id: u.hypothesis for u in result.utterances}


def run(executor: str, out, isolated: bool) -> dict:
    script = SCRIPT.format(model=MODEL, dataset=DATASET)
    command = [sys.executable, "-c", script, executor, str(out)]
    if isolated:  # a network namespace with loopback only: Ray's servers are reachable from nowhere else
        command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_worker_processes_give_the_serial_transcripts(serial, tmp_path):
    got = run("local", tmp_path / "out.json", isolated=False)
    assert got["texts"] == serial
    assert got["workers"] == ["w1", "w2"] and got["threads"] == [1]
    assert got["environment"]["workers"] == 2 and got["throughput"] > 0


def test_two_ray_actors_give_the_serial_transcripts(serial, tmp_path):
    pytest.importorskip("ray")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("a local Ray listens on every interface; this test runs it in a network namespace of its "
                    "own, which needs root, unshare and ip")
    got = run("ray", tmp_path / "out.json", isolated=True)
    assert got["texts"] == serial
    assert got["workers"] == ["ray-1", "ray-2"] and got["threads"] == [1]
    assert got["environment"]["executor"] == "ray"


def test_the_batch_equivalence_suite_on_the_fixtures():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("CI", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "suites/test_batch_equivalence.py", "-p", "no:cacheprovider",
                           "--speechlab-no-db", "--speechlab-batch-equivalence", "8", "--speechlab-model", MODEL],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert "batch equivalence: faster-whisper/tiny.en at batch 8 against batch 1 on speechlab/speech" in out, out[-3000:]
    assert "WER difference (batch 8 - batch 1)" in out and "transcripts (normalized) identical on" in out
    compared = int(out.split("transcripts (normalized) identical on ")[1].split(";")[0].split("/")[1])
    assert compared == 34
    assert done.returncode == 0, out[-3000:]  # within batch_disagreement_rate, WER not significantly worse
