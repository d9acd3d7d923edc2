"""The README's per-language table, from a real run: faster-whisper/base (beam 5, CPU int8) on
../shared/data/realspeech-multi, rendered from the run file with the current code and written
between the README's ``<!-- languages-table -->`` markers, with the environment it ran in (CPU,
backend versions, normalizers, date). The figures depend on the machine (CTranslate2's int8
kernels differ by CPU) and on the backend versions (the first-party plugin pins them): the block
says which, so a reader can tell a changed figure from a changed machine.

    python benchmarks/languages.py                     # run, rewrite docs/languages-run.json and the README
    python benchmarks/languages.py --render            # only re-render from the existing file
    python benchmarks/languages.py --data PATH/manifest.jsonl
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from _readme_blocks import REPO, run_pytest, save_run, write_block  # beside this script

DATA = REPO.parent / "shared" / "data" / "realspeech-multi" / "manifest.jsonl"
RUN = REPO / "docs" / "languages-run.json"
START, END = "<!-- languages-table: benchmarks/languages.py writes this block -->", "<!-- /languages-table -->"
MODEL = "faster-whisper/base"


def _ci(ci) -> str:
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def render(run: dict) -> str:
    """The per-language table of the run's one evaluation, and the line saying where it ran."""
    (evaluation,) = [e for e in run["evaluations"] if len(e["summary"]["languages"]) > 1]
    s, env = evaluation["summary"], evaluation["environment"]
    lines = ["| language | utts | headline [95% CI] | S/D/I |", "|---|---:|---|---|"]
    for lang in s["languages"]:
        unit = "WER" if lang["metric"] == "wer" else "**CER**"
        judged = f"{unit} {lang['error_rate']:.3f}" + (
            f", {lang['too_few']}" if lang.get("too_few") else _ci(lang["ci"]))
        lines.append(f"| {lang['language']} | {lang['scored']} | {judged} | "
                     f"{lang['substitutions']}/{lang['deletions']}/{lang['insertions']} |")
    macro = ("not averaged: every language has too few clips to judge" if s["error_rate"] is None
             else f"**{s['error_rate']:.3f}{_ci(s['error_ci'])}** ({s['error_label']})")
    lines.append(f"| **macro average** | {s['scored']} | {macro} | |")
    lid = s.get("language_id")
    if lid:
        lines += ["", f"Language identification (the model left to identify each clip's language): "
                      f"{lid['correct']}/{lid['total']} [{lid['ci'][0]:.2f}, {lid['ci'][1]:.2f}]; grade: "
                      f"{next((g['grade'] for g in run.get('scorecard', ()) if g.get('grade')), '-')}."]
    ran = run.get("meta", {}).get("recorded", "?")
    lines += ["", f"Recorded {ran} by `python benchmarks/languages.py`: {env.get('cpu')} x {env.get('cpu_count')}, "
                  f"{env.get('threads')} threads, {evaluation['model_info'].get('backend_version')}, "
                  f"Python {env.get('python')}; normalizers {evaluation['normalizer']}."]
    return "\n".join(lines)


def record(data: Path) -> None:
    if not data.is_file():
        sys.exit(f"{data} is not there: give --data PATH/manifest.jsonl")
    run_pytest(["suites/test_asr_accuracy.py", "--speechlab-no-db", "--speechlab-model", MODEL,
                "--speechlab-dataset", str(data), "--speechlab-json", str(RUN)], REPO, "the table")
    save_run(RUN, {"args": ["suites/test_asr_accuracy.py", "--speechlab-model", MODEL],
                   "recorded": datetime.date.today().isoformat()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="only re-render the README from the existing file")
    parser.add_argument("--data", type=Path, default=DATA, help="the realspeech-multi manifest")
    args = parser.parse_args()
    if not args.render:
        record(args.data)
    write_block(START, END, render(json.loads(RUN.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
