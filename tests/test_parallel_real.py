"""Worker processes and Ray actors give the serial transcripts on the project's fixtures, with the
real tiny.en. Ray runs inside a network namespace of its own (loopback only), so that the local
cluster it starts is reachable from nowhere else."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from helpers import REPO
from pytest_speechlab import evaluate_models
from pytest_speechlab.engine.executors import threads_environment

pytest.importorskip("speechlab_faster_whisper")
MODEL, DATASET = "faster-whisper/tiny.en", "speechlab/speech"
SCRIPT = """
import json, sys
from pytest_speechlab import evaluate_models
(r,) = evaluate_models([{model!r}], [{dataset!r}], pyproject=None, workers={workers}, threads=1, executor=sys.argv[1])
json.dump({{"texts": {{u.utterance.id: u.hypothesis for u in r.utterances}},
           "workers": sorted({{u.worker for u in r.utterances}}), "threads": sorted({{u.threads for u in r.utterances}}),
           "throughput": r.throughput, "environment": r.environment}}, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def serial():
    """The serial transcripts with the workers' thread settings (one thread, OMP_NUM_THREADS=1 and
    the like, set before the model's libraries start): a transcript may depend on the thread count
    (ctranslate2 4.8.5 here: s23_market gets a comma with one OpenMP thread and none with two), and
    that is not what these tests are about."""
    with tempfile.TemporaryDirectory() as folder:
        return run("local", os.path.join(folder, "serial.json"), isolated=False, workers=1,
                   env=threads_environment(1))["texts"]


def run(executor: str, out, isolated: bool, workers: int = 2, env: dict | None = None) -> dict:
    script = SCRIPT.format(model=MODEL, dataset=DATASET, workers=workers)
    command = [sys.executable, "-c", script, executor, str(out)]
    if isolated:  # a network namespace with loopback only: Ray's servers are reachable from nowhere else
        command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out) as fh:
        return json.load(fh)


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
    assert [w.split("@")[0] for w in got["workers"]] == ["ray-1", "ray-2"] and got["threads"] == [1]
    assert len({w.split("@node-")[1] for w in got["workers"]}) == 1  # one node: the session's own Ray
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


@pytest.mark.parametrize("model", ["faster-whisper/tiny.en", "openai-whisper/tiny.en", "transformers/tiny.en"])
def test_each_whisper_backend_decodes_batches_like_batch_one(model, tmp_path):
    """Eight fixture clips at batch 4 and at batch 1, greedy (openai-whisper batches greedy decoding
    only): the batch method of each backend is used (the batch size is recorded) and gives the
    batch-1 transcripts on clean speech."""
    pytest.importorskip({"faster-whisper": "speechlab_faster_whisper", "openai-whisper": "speechlab_openai_whisper",
                         "transformers": "speechlab_transformers_whisper"}[model.split("/")[0]])
    source = REPO / "fixtures" / "speech" / "manifest.jsonl"
    lines = [json.loads(line) for line in source.read_text().splitlines()[:8]]
    manifest = tmp_path / "eight.jsonl"
    manifest.write_text("".join(json.dumps({**e, "audio": str(source.parent / e["audio"])}) + "\n" for e in lines))
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[tool.speechlab.models.single]\nmodel = "{model}"\nbeam_size = 1\n'
                         f'[tool.speechlab.models.batched]\nmodel = "{model}"\nbeam_size = 1\nbatch_size = 4\n')
    single, batched = evaluate_models(["single", "batched"], [str(manifest)], pyproject=pyproject)
    assert not any("failed" in u.note for u in batched.utterances), [u.note for u in batched.utterances]
    assert {u.batch_size for u in batched.utterances} == {4} and {u.batch_size for u in single.utterances} == {1}
    assert batched.model_info["params"]["batch_size"] == 4  # part of the identity and the cache key
    same = sum(a.hypothesis_normalized == b.hypothesis_normalized for a, b in zip(single.utterances, batched.utterances))
    assert same >= 7, [(a.hypothesis, b.hypothesis) for a, b in zip(single.utterances, batched.utterances)]


def test_faster_whisper_batches_a_long_recording_through_the_batched_pipeline(tmp_path):
    import numpy as np
    import soundfile as sf

    source = REPO / "fixtures" / "speech" / "manifest.jsonl"
    entries = [json.loads(line) for line in source.read_text().splitlines()[:12]]
    clips = [sf.read(source.parent / e["audio"], dtype="float32") for e in entries]
    rate = clips[0][1]
    long = np.concatenate([np.concatenate([c, np.zeros(rate // 2, np.float32)]) for c, _ in clips])
    assert len(long) / rate > 30
    sf.write(tmp_path / "long.wav", long, rate)
    (tmp_path / "long.jsonl").write_text(json.dumps({"id": "long", "audio": "long.wav",
                                                     "text": " ".join(e["text"] for e in entries)}) + "\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.speechlab.models.batched]\nmodel = "faster-whisper/tiny.en"\nbatch_size = 4\n')
    (result,) = evaluate_models(["batched"], [str(tmp_path / "long.jsonl")], pyproject=pyproject)
    (u,) = result.utterances
    assert u.transcript.extra["batched_pipeline"] == {"condition_on_previous_text": False, "vad_filter": True,
                                                      "batch_size": 4}
    assert result.model_info["long_form_batched"] == {"condition_on_previous_text": False, "vad_filter": True}
    assert len(u.transcript.segments) > 1 and result.wer < 0.15


def test_ray_actors_on_an_existing_cluster_by_address(serial, tmp_path):
    """The cluster path (--speechlab-ray-address): a Ray head started beforehand with `ray start`, as a
    team's cluster would be, joined with address "auto"; the audio travels with the work (no shared
    storage needed). All inside a loopback-only network namespace."""
    pytest.importorskip("ray")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("runs Ray in a network namespace of its own, which needs root, unshare and ip")
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    out = tmp_path / "out.json"
    script = SCRIPT.format(model=MODEL, dataset=DATASET, workers=2).replace(
        "executor=sys.argv[1])", "executor=sys.argv[1], ray_address='auto')")
    (tmp_path / "child.py").write_text(script)
    ray_dir = tempfile.mkdtemp(prefix="slray", dir="/tmp")  # its socket paths must stay under 108 bytes
    shell = (f'ip link set lo up && {ray} start --head --num-cpus 2 --include-dashboard false '
             f'--node-ip-address 127.0.0.1 --temp-dir {ray_dir} --disable-usage-stats >/dev/null && '
             f'{sys.executable} {tmp_path / "child.py"} ray {out}; code=$?; {ray} stop --force >/dev/null; exit $code')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(["unshare", "-n", "sh", "-c", shell], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    shutil.rmtree(ray_dir, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["texts"] == serial and [w.split("@")[0] for w in got["workers"]] == ["ray-1", "ray-2"]
