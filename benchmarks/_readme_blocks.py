"""What the figure scripts share: running pytest for a run file, keeping that file free of this
machine's paths, and replacing a marked block of README.md or a docs page with what the script rendered."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def run_pytest(args: list[str], cwd: Path, what: str) -> None:
    """pytest with ``args`` in ``cwd`` (offline, not as CI); exit 0 or 1 (a check failed, which is a
    figure) is a run, anything else ends the script without rewriting ``what``."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=cwd, env=env)
    if out.returncode not in (0, 1):
        sys.exit(f"the run exited {out.returncode}: {what} is not rewritten")


def save_run(path: Path, meta: dict, keep_alignment: bool = True) -> dict:
    """The run file at ``path`` rewritten with ``meta``, each audio path reduced to its file name
    (where the data sits on this machine is not part of the record), the word alignments dropped
    unless ``keep_alignment``; returned."""
    run = json.loads(path.read_text(encoding="utf-8"))
    for evaluation in run["evaluations"] + (run.get("robustness") or {}).get("evaluations", []):
        for u in evaluation["utterances"]:
            u["audio_path"] = os.path.basename(u["audio_path"]) if u.get("audio_path") else None
            if not keep_alignment:
                u.pop("alignment", None)
    run["meta"] = {"run_id": None, **meta}
    run["run"] = None  # the database's copy of the run: this machine's, and a second copy of the figures
    path.write_text(json.dumps(run, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return run


def write_block(start: str, end: str, body: str) -> None:
    """Replace the block between the ``start`` and ``end`` markers (in README.md or the docs page
    that holds it) with ``body``, and print it."""
    for page in (README, *sorted((REPO / "docs").glob("*.md"))):
        text = page.read_text(encoding="utf-8")
        if start in text and end in text:
            current = text[text.index(start):text.index(end) + len(end)]
            page.write_text(text.replace(current, f"{start}\n{body}\n{end}"), encoding="utf-8")
            print(body)
            return
    sys.exit(f"no page has a {start} ... {end} block (README.md, docs/*.md)")
