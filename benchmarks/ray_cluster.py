"""Ray across nodes: audio shipped with each unit against audio read from shared storage, on a
cluster of a head (no CPUs) and two worker nodes, each its own raylet and object store
(ray.cluster_utils.Cluster), with an instant model (so that what is timed is the harness and the
transfer), over a set of distinct clips built from the fixtures (benchmarks/_distinct.py).

    python benchmarks/ray_cluster.py                     # 400 clips, units of 4
    python benchmarks/ray_cluster.py --utterances 1000

Runs inside a loopback-only network namespace when it can (root, unshare, ip). Per mode: the audio
bytes sent with each unit, the time from sending a unit to having its outputs back (median and 90th
percentile over units, each actor's first left out: it starts the actor), the wall time, and how
many nodes ran the clips.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _distinct import INSTANT, build_distinct

DRIVER = r"""
import json, statistics, sys, time
from pathlib import Path
from ray.cluster_utils import Cluster
from pytest_speechlab import load_dataset, ModelPool, ModelSpec
from pytest_speechlab.engine.ray_executor import RayExecutor
from pytest_speechlab.engine.runner import Runner
import instant

manifest, units = sys.argv[1], int(sys.argv[2])
cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                                       "node_ip_address": "127.0.0.1"})
for _ in range(2):
    cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
cluster.wait_for_nodes()
utterances = load_dataset(manifest).utterances
spec = ModelSpec("instant/asr", "asr", instant.load, backend="instant", params={"batch_size": units})
out = {}
for mode in ("ship", "shared"):
    executor = RayExecutor(4, 1, cluster.address, audio=mode)
    runner = Runner(executor=executor)
    loaded = ModelPool().get(spec)
    start = time.perf_counter()
    outputs = runner.run(loaded, utterances)
    wall = time.perf_counter() - start
    executor.close()
    seconds = sorted(s for _, _, s, first in executor.shipped if not first)  # an actor's first unit starts it
    out[mode] = {"units": len(executor.shipped), "clips": len(outputs), "wall_s": round(wall, 2),
                 "bytes_per_unit": round(statistics.mean(b for _, b, _, _ in executor.shipped)),
                 "unit_ms_median": round(statistics.median(seconds) * 1000, 1),
                 "unit_ms_p90": round(seconds[int(0.9 * (len(seconds) - 1))] * 1000, 1),
                 "nodes": len({o.worker.split("@")[1] for o in outputs})}
print(json.dumps(out))
cluster.shutdown()
"""

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=400)
    parser.add_argument("--unit", type=int, default=4, help="clips per unit (the model's batch size)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slrb", dir="/tmp") as tmp:
        manifest = build_distinct(Path(tmp) / "set", options.utterances)
        (Path(tmp) / "instant.py").write_text(INSTANT)
        (Path(tmp) / "driver.py").write_text(DRIVER)
        os.mkdir(Path(tmp) / "ray")
        command = [sys.executable, str(Path(tmp) / "driver.py"), str(manifest), str(options.unit)]
        if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
            command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
        env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
               "PYTHONPATH": os.pathsep.join([tmp, str(Path(__file__).resolve().parent.parent)])}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise SystemExit(done.stderr[-3000:])
        for mode, figures in json.loads(lines[-1]).items():
            print(f"audio {mode}: {figures['clips']} clips in {figures['units']} units over {figures['nodes']} nodes, "
                  f"{figures['bytes_per_unit']:,} audio bytes sent per unit, unit round trip median "
                  f"{figures['unit_ms_median']} ms (90th percentile {figures['unit_ms_p90']} ms), wall {figures['wall_s']} s")


if __name__ == "__main__":
    main()
