"""Speed judged honestly on a busy machine: the README's main job (`pytest suites/`, cache off) run
once on the machine as it is, then once while N CPU-bound processes run beside it (started here and
stopped after it). Printed for each: exit status, outcome line, each evaluation's RTF and measured
contention (the share of the CPUs other processes took, the load average, CPU seconds per wall
second of the model's calls), and the lines saying speed was not judged.

    python benchmarks/busy_machine.py [--burners 4]

Run it on an otherwise quiet machine: the first run is the quiet one, where speed is judged.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "CI"} | {"HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def main_job(label: str, run_file: Path) -> int:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "-q", "-rs",
                          "--speechlab-cache", "off", "--speechlab-no-db", "--speechlab-json", str(run_file)],
                         cwd=REPO, env=ENV, capture_output=True, text=True)
    lines = (out.stdout + out.stderr).splitlines()
    closing = next((line.strip("= ") for line in reversed(lines) if " in " in line), "(no outcome line)")
    print(f"{label}: exit {out.returncode} in {time.perf_counter() - start:.1f} s: {closing}")
    if run_file.exists():
        for e in json.loads(run_file.read_text())["evaluations"]:
            s, c = e["summary"], e["summary"].get("contention") or {}
            share = "-" if c.get("others_share") is None else f"{c['others_share']:.0%}"
            cpu = "-" if s.get("cpu_per_wall") is None else f"{s['cpu_per_wall']:.2f}"
            print(f"  {s['model']} on {s['dataset']}: RTF {s['rtf']:.3f}; others used {share} of {c.get('cpus')} "
                  f"CPUs over {c.get('wall_s')} s (load {c.get('loadavg_1m')}); CPU s per wall s of the calls {cpu}; "
                  f"speed {'NOT JUDGED' if s['speed_unjudged'] else 'judged'}")
    for line in lines:
        if "speed not judged" in line or "RTF limits not judged" in line or line.startswith("SKIPPED"):
            print(f"  | {line.strip()[:400]}")
    return out.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burners", type=int, default=4, help="CPU-bound processes beside the busy run")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from pytest_speechlab._machine import machine

    print(f"machine: {machine()['cpu']} ({machine()['cpu_count']} CPUs)")
    with tempfile.TemporaryDirectory() as scratch:
        quiet = main_job("quiet", Path(scratch) / "quiet.json")
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
        try:
            busy = main_job(f"busy ({args.burners} CPU-bound processes beside it)", Path(scratch) / "busy.json")
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
    return 0 if quiet == busy == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
