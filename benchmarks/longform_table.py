"""The README's long-form table, from a real run: the long-form suite on the built-in 10-minute
fixture (``speechlab/longform``) for each configuration below, in a scratch project (the variants
are defined there, this repository's pyproject is not changed). Each row: the recording's WER, and
the long-form check's verdict with the seconds of processing, or the problems it found. The table,
with the environment (CPU, backend versions, date), replaces the block between the README's
``<!-- longform-table -->`` markers.

    python benchmarks/longform_table.py             # every configuration (about 15 min on 2 cores)
    python benchmarks/longform_table.py --render    # only re-render from docs/longform-run.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from _readme_blocks import REPO, run_pytest, save_run, write_block  # beside this script

RUN = REPO / "docs" / "longform-run.json"
START, END = "<!-- longform-table: benchmarks/longform_table.py writes this block -->", "<!-- /longform-table -->"
# name -> (what the README row calls it, the variant's settings or None for a registered model)
CONFIGS = {
    "openai-whisper/tiny.en": ("openai-whisper/tiny.en", None),
    "tiny-vad": ("tiny-vad (faster-whisper/tiny.en, `vad_filter = true`)",
                 {"model": "faster-whisper/tiny.en", "vad_filter": True}),
    "faster-whisper/tiny.en": ("faster-whisper/tiny.en", None),
    "tiny-vad-nocond": ("faster-whisper/tiny.en, `vad_filter = true`, `condition_on_previous_text = false`",
                        {"model": "faster-whisper/tiny.en", "vad_filter": True, "condition_on_previous_text": False}),
    "tiny-nocond": ("faster-whisper/tiny.en, `condition_on_previous_text = false`",
                    {"model": "faster-whisper/tiny.en", "condition_on_previous_text": False}),
    "transformers/tiny.en": ("transformers/tiny.en", None),
    "transformers-chunked": ("transformers-chunked (transformers/tiny.en, `long_form = \"chunked\"`)",
                             {"model": "transformers/tiny.en", "long_form": "chunked"}),
}


def _toml(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def render(run: dict) -> str:
    verdicts = run["meta"]["verdicts"]
    lines = ["| model | WER | long-form check |", "|---|---:|---|"]
    for e in run["evaluations"]:
        name = e["model"]
        s = e["summary"]
        problems = verdicts.get(name)
        problems = None if problems is None else [p for p in problems if not p.startswith("[+")]
        check = (f"passes ({s['processing_seconds']:.0f} s)" if problems is None else
                 "fails: " + "; ".join(problems))
        lines.append(f"| {CONFIGS.get(name, (name,))[0]} | {s['wer']:.3f} | {check} |")
    env = run["evaluations"][0]["environment"] if run["evaluations"] else {}
    versions = sorted({e["model_info"]["backend_version"] for e in run["evaluations"]
                       if e["model_info"].get("backend_version")})
    meta = run["meta"]
    lines += ["", f"Recorded {meta['recorded']} by `python benchmarks/longform_table.py` ({meta['wall_s']} s of wall "
                  f"clock): {env.get('cpu')} x {env.get('cpu_count')}, {env.get('threads')} threads; "
                  f"{'; '.join(versions)}; Python {env.get('python')}."]
    return "\n".join(lines)


def _verdicts(junit: Path) -> dict[str, list[str]]:
    """model -> the problems its long-form check found (absent: it passed)."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        failure = case.find("failure")
        if not name.startswith("test_long_recording_is_decoded_whole") or failure is None:
            continue
        model = name[name.index("[") + 1:].rsplit("-", 1)[0]
        text = failure.get("message", "")
        lines = [line.strip() for line in text.splitlines()[1:]]  # pytest may end it with "[+3 more lines; ...]"
        out[model] = [line.split(": ", 1)[-1] for line in lines if line and not line.startswith("[+")][:3]
    return out


def record() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        (project / "suites").mkdir()
        shutil.copy(REPO / "suites" / "test_longform.py", project / "suites")
        variants = "".join(f"\n[tool.speechlab.models.{name}]\n"
                           + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())
                           for name, (_, settings) in CONFIGS.items() if settings)
        (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\n" + variants, encoding="utf-8")
        started = datetime.datetime.now()
        run_pytest(["suites", "--speechlab-no-db", "--speechlab-dataset", "speechlab/longform",
                    "--speechlab-json", str(RUN), "--junitxml", str(project / "junit.xml"),
                    *(arg for name in CONFIGS for arg in ("--speechlab-model", name))], project, "the table")
        wall = (datetime.datetime.now() - started).total_seconds()
        verdicts = _verdicts(project / "junit.xml")
    save_run(RUN, {"recorded": datetime.date.today().isoformat(), "wall_s": round(wall), "verdicts": verdicts},
             keep_alignment=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="only re-render the README from the existing file")
    args = parser.parse_args()
    if not args.render:
        record()
    write_block(START, END, render(json.loads(RUN.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
