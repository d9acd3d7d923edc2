"""Ray across nodes: a cluster of a head (no CPUs: it runs no actor) and two worker nodes, each its
own raylet and object store (ray.cluster_utils.Cluster), inside a loopback-only network namespace.
The units reach both worker nodes (each utterance records the node that ran it); a worker node
removed mid-run loses nothing and duplicates nothing; audio shipped with each unit and audio read
from shared storage give the same transcripts, and the bytes sent with each unit are counted."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from helpers import REPO

pytest.importorskip("ray")
if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
    pytest.skip("runs a Ray cluster in a network namespace of its own, which needs root, unshare and ip",
                allow_module_level=True)

# A model whose transcript is the clip's length, slow enough that both nodes get work and a node can
# be removed while a unit is in flight on it; it notes each call's start and end, and its node, in a
# file the driver watches.
MODEL = '''
import os, time
from pathlib import Path
from pytest_speechlab import Transcript, hookimpl


class Length:
    sample_rate = 16000

    def __init__(self, params):
        self.log = Path(params["log"])

    def transcribe(self, audio):
        import ray

        node = ray.get_runtime_context().get_node_id()
        with open(self.log, "a") as fh:
            fh.write(f"start {node}\\n")
        time.sleep(0.25)
        with open(self.log, "a") as fh:
            fh.write(f"end {node}\\n")
        return Transcript(f"clip of {len(audio)} samples")

    def info(self):
        return {"backend_version": "length 1"}


def load(params):
    return Length(params)


@hookimpl
def speechlab_register_models(register):
    register("length/asr", task="asr", load=load, backend="length", params={"log": LOG})
'''

DRIVER = '''
import json, sys, threading, time
from pathlib import Path

folder, mode, audio = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, str(folder))
import lengthmodel
from ray.cluster_utils import Cluster
from pytest_speechlab import evaluate_models

args = {"include_dashboard": False, "node_ip_address": "127.0.0.1"}  # its files: under $RAY_TMPDIR
cluster = Cluster(initialize_head=True, connect=False, head_node_args={**args, "num_cpus": 0})
nodes = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
cluster.wait_for_nodes()
removed = []

def remove_one():  # once eight clips are done and a clip is in flight on the second worker node,
    # that node goes (its raylet and store killed): the unit it holds is lost with it
    log, lost = folder / "calls.log", nodes[1].node_id
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        mine = [line for line in lines if line.endswith(lost)]
        if sum(line.startswith("end") for line in lines) >= 8 and mine and mine[-1].startswith("start"):
            break
        time.sleep(0.01)
    cluster.remove_node(nodes[1], allow_graceful=False)
    removed.append(nodes[1].node_id)

if mode == "loss":
    threading.Thread(target=remove_one, daemon=True).start()
(result,) = evaluate_models(["length/asr"], [sys.argv[5]], pyproject=None, plugins=[lengthmodel], workers=2,
                            threads=1, executor="ray", ray_address=cluster.address, ray_audio=audio)
json.dump({"workers": [u.worker for u in result.utterances], "events": result.environment.get("worker_events", []), "ids": [u.utterance.id for u in result.utterances],
           "texts": [u.hypothesis for u in result.utterances], "errors": [str(u.error) for u in result.utterances if u.error],
           "nodes": [n.node_id for n in nodes], "head": cluster.head_node.node_id, "removed": removed},
          open(folder / "out.json", "w"))
cluster.shutdown()
'''


def run_cluster(tmp_path, mode: str, audio: str = "ship") -> dict:
    folder = tmp_path / mode
    folder.mkdir()
    (folder / "lengthmodel.py").write_text(MODEL.replace("LOG", repr(str(folder / "calls.log"))))
    (folder / "driver.py").write_text(DRIVER)
    ray_dir = tempfile.mkdtemp(prefix="slray", dir="/tmp")  # its socket paths must stay under 108 bytes
    os.mkdir(os.path.join(ray_dir, "ray"))
    shell = f'ip link set lo up && exec {sys.executable} {folder / "driver.py"} {folder} {mode} {audio} {ray_dir} speechlab/speech'
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_TMPDIR": ray_dir, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(["unshare", "-n", "sh", "-c", shell], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=400)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / "out.json").read_text())


def expected_texts() -> dict[str, str]:
    import soundfile

    from pytest_speechlab import load_dataset
    from pytest_speechlab._builtin import fixtures_dir

    dataset = load_dataset(fixtures_dir() / "speech" / "manifest.jsonl")
    out = {}
    for u in dataset.utterances:
        info = soundfile.info(u.audio_path)
        out[u.id] = f"clip of {round(info.frames * 16000 / info.samplerate)} samples"
    return out


def nodes_of(got: dict) -> set[str]:
    return {w.split("@node-")[1] for w in got["workers"]}


def test_units_reach_both_worker_nodes_and_shared_storage_gives_the_same_transcripts(tmp_path):
    want = expected_texts()
    shipped = run_cluster(tmp_path, "spread", "ship")
    assert sorted(shipped["ids"]) == sorted(want) and not shipped["errors"]
    assert dict(zip(shipped["ids"], shipped["texts"])) == want
    workers = {n[:8] for n in shipped["nodes"]}
    assert nodes_of(shipped) == workers and shipped["head"][:8] not in nodes_of(shipped)  # both workers, never the head
    shared = run_cluster(tmp_path, "shared", "shared")
    assert dict(zip(shared["ids"], shared["texts"])) == want and nodes_of(shared) == {n[:8] for n in shared["nodes"]}


def test_a_worker_node_lost_mid_run_loses_nothing_and_duplicates_nothing(tmp_path):
    want = expected_texts()
    got = run_cluster(tmp_path, "loss")
    assert got["removed"] == [got["nodes"][1]]
    assert sorted(got["ids"]) == sorted(want) and len(got["ids"]) == len(set(got["ids"]))  # each once
    assert dict(zip(got["ids"], got["texts"])) == want and not got["errors"]
    lost = got["nodes"][1][:8]
    by_node = {n: [w for w in got["workers"] if w.endswith(n)] for n in nodes_of(got)}
    assert lost in by_node and got["nodes"][0][:8] in by_node  # the lost node ran some before it went
    # the unit in flight on the lost node was retried until an actor on the node left ran it. Its
    # replacement actor may itself be placed on the node being removed (the cluster has not yet
    # marked it dead) and die too: measured, one death in 7 of 8 runs, two in 1 of 8; a third
    # would exhaust the two retries and fail the unit, which the test would see as an error
    deaths = [e for e in got["events"] if "died" in e]
    assert 1 <= len(deaths) <= 2 and all("retried on another Ray actor" in e for e in deaths), got["events"]
    assert len({e.split("while running ")[1].split(";")[0] for e in deaths}) == 1  # the one unit in flight
