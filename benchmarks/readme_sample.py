"""The README's sample output, from a real run: the main job (`pytest suites/`, the inference cache
off so that every output is computed here) writes its run file to docs/sample-run.json, and the
terminal summary rendered from that file replaces the block between the README's
``<!-- sample-output -->`` markers. tests/test_readme_sample.py renders the same file and fails
when the README's block is not what the current code prints, so the sample is never pasted.

    python benchmarks/readme_sample.py            # run the main job, rewrite the file and the README
    python benchmarks/readme_sample.py --render   # only re-render the README from the existing file
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "docs" / "sample-run.json"
README = REPO / "README.md"
START, END = "<!-- sample-output: benchmarks/readme_sample.py writes this block -->", "<!-- /sample-output -->"
WIDTH = 100


class _Grade:
    def __init__(self, model: str, grade: str, reason: str) -> None:
        self.model, self.grade, self.reason = model, grade, reason

    def __str__(self) -> str:
        return f"{self.grade}: {self.reason}"


def render(sample: dict) -> str:
    """The terminal summary of a run file, as `pytest suites/` prints it on a 100-column terminal."""
    sys.path.insert(0, str(REPO))
    from pytest_speechlab.sinks.terminal import summary_lines

    grades = {row["model"]: _Grade(row["model"], row["grade"], row["grade_reason"])
              for row in sample["scorecard"] if row.get("grade")}
    lines = summary_lines(sample["evaluations"], {model: 1 for model in grades}, list(grades.values()), width=WIDTH)
    title = " speechlab summary "
    rule = "=" * ((WIDTH - len(title)) // 2)
    return "\n".join([f"{rule}{title}{rule}", *lines])


def block(text: str) -> str:
    return f"{START}\n```\n{text}\n```\n{END}"


def readme_block(readme: str) -> str | None:
    if START not in readme or END not in readme:
        return None
    return readme[readme.index(START):readme.index(END) + len(END)]


def record() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"HF_HUB_OFFLINE": "1", "COLUMNS": str(WIDTH)}
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "-q",
                          "--speechlab-no-db", "--speechlab-json", str(SAMPLE)], cwd=REPO, env=env)
    if out.returncode:
        sys.exit(f"the main job exited {out.returncode}: the sample is not rewritten")
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for evaluation in data["evaluations"]:  # where the fixtures sit on this machine: not part of the sample
        for u in evaluation["utterances"]:
            u["audio_path"] = os.path.relpath(u["audio_path"], REPO) if u.get("audio_path") else None
    data["meta"] = {"run_id": None, "args": ["suites/"]}
    SAMPLE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="only re-render the README from docs/sample-run.json")
    args = parser.parse_args()
    if not args.render:
        record()
    readme = README.read_text(encoding="utf-8")
    current = readme_block(readme)
    if current is None:
        sys.exit(f"README.md has no {START} ... {END} block")
    README.write_text(readme.replace(current, block(render(json.loads(SAMPLE.read_text(encoding="utf-8"))))),
                      encoding="utf-8")
    print(render(json.loads(SAMPLE.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
