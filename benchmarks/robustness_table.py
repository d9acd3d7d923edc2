"""The README's robustness table, from a real run: the robustness suite on the 34 speech fixtures for
faster-whisper/tiny.en (the NWERD reference) and pocketsphinx, through the perturbations named
(default: noise and reverb, at their four severities, one seed), in a scratch project so that this
repository's pyproject is not changed. The Markdown table the suite writes, with the ladders (the SNR
each severity was heard at) and the environment (CPU, backend versions, date), replaces the block
between the README's ``<!-- robustness-table -->`` markers.

    python benchmarks/robustness_table.py                       # noise and reverb (about 20 min on 2 cores)
    python benchmarks/robustness_table.py --kinds noise babble  # others
    python benchmarks/robustness_table.py --render              # only re-render from docs/robustness-run.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

from _readme_blocks import REPO, run_pytest, save_run, write_block  # beside this script

RUN = REPO / "docs" / "robustness-run.json"
START, END = "<!-- robustness-table: benchmarks/robustness_table.py writes this block -->", "<!-- /robustness-table -->"
MODELS = ("faster-whisper/tiny.en", "pocketsphinx")


def render(run: dict) -> str:
    sys.path.insert(0, str(REPO))
    from pytest_speechlab.sinks.report import ROBUSTNESS_HEADER, md, robustness_ladders, robustness_rows

    curves = run["robustness"]["curves"]
    table = "\n".join(["| " + " | ".join(ROBUSTNESS_HEADER) + " |",
                       "|" + "---|" * 2 + "---:|" * (len(ROBUSTNESS_HEADER) - 2),
                       *("| " + " | ".join(md(c) for c in row) + " |" for row in robustness_rows(curves))])
    env = next((e for e in run["robustness"]["evaluations"] if e["model"] == MODELS[0]), {}).get("environment", {})
    versions = sorted({e["model_info"].get("backend_version") for e in run["robustness"]["evaluations"]
                       if e["model_info"].get("backend_version")})
    meta = run.get("meta", {})
    return "\n".join([table, "", "Severities: " + "; ".join(robustness_ladders(curves)) + ".", "",
                      f"Recorded {meta.get('recorded', '?')} by `python benchmarks/robustness_table.py` "
                      f"({meta.get('wall_s', '?')} s of wall clock): {env.get('cpu')} x {env.get('cpu_count')}, "
                      f"{'; '.join(versions)}, Python {env.get('python')}."])


def record(kinds: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        (project / "suites").mkdir()
        shutil.copy(REPO / "suites" / "test_robustness.py", project / "suites")
        (project / "pyproject.toml").write_text(
            "[tool.pytest.ini_options]\n"
            f"speechlab_models = {json.dumps(list(MODELS))}\nspeechlab_datasets = [\"speechlab/speech\"]\n\n"
            "[tool.speechlab.robustness]\n"
            f"perturbations = {json.dumps(kinds)}\nreference = \"{MODELS[0]}\"\n", encoding="utf-8")
        started = datetime.datetime.now()
        run_pytest(["suites", "--speechlab-robustness", "--speechlab-no-db", "--speechlab-json", str(RUN)],
                   project, "the table")
        wall = (datetime.datetime.now() - started).total_seconds()
    save_run(RUN, {"kinds": kinds, "recorded": datetime.date.today().isoformat(), "wall_s": round(wall)},
             keep_alignment=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="only re-render the README from the existing file")
    parser.add_argument("--kinds", nargs="+", default=["noise", "reverb"], help="perturbation kinds")
    args = parser.parse_args()
    if not args.render:
        record(args.kinds)
    write_block(START, END, render(json.loads(RUN.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
