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
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "docs" / "robustness-run.json"
README = REPO / "README.md"
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
        env = {k: v for k, v in os.environ.items() if k != "CI"} | {"HF_HUB_OFFLINE": "1"}
        started = datetime.datetime.now()
        out = subprocess.run([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q",
                              "--speechlab-robustness", "--speechlab-no-db", "--speechlab-json", str(RUN)],
                             cwd=project, env=env)
        wall = (datetime.datetime.now() - started).total_seconds()
    if out.returncode not in (0, 1):  # 1: a model broke before the gate severity, which is a figure
        sys.exit(f"the run exited {out.returncode}: the table is not rewritten")
    run = json.loads(RUN.read_text(encoding="utf-8"))
    for evaluation in run["evaluations"] + run["robustness"]["evaluations"]:
        for u in evaluation["utterances"]:  # where the fixtures sit on this machine: not part of the record
            u["audio_path"] = os.path.basename(u["audio_path"]) if u.get("audio_path") else None
            u.pop("alignment", None)  # kept small: the rows, not the word alignment
    run["meta"] = {"run_id": None, "kinds": kinds, "recorded": datetime.date.today().isoformat(), "wall_s": round(wall)}
    RUN.write_text(json.dumps(run, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="only re-render the README from the existing file")
    parser.add_argument("--kinds", nargs="+", default=["noise", "reverb"], help="perturbation kinds")
    args = parser.parse_args()
    if not args.render:
        record(args.kinds)
    readme = README.read_text(encoding="utf-8")
    if START not in readme or END not in readme:
        sys.exit(f"README.md has no {START} ... {END} block")
    table = render(json.loads(RUN.read_text(encoding="utf-8")))
    current = readme[readme.index(START):readme.index(END) + len(END)]
    README.write_text(readme.replace(current, f"{START}\n{table}\n{END}"), encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
