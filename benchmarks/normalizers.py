"""The README's normalizer comparison, from a real run: faster-whisper/tiny.en on
../shared/data/realspeech-dev, its transcripts scored with each normalizer (the same outputs:
only the scoring differs), written between the README's ``<!-- normalizer-figures -->`` markers
with the environment.

    python benchmarks/normalizers.py                  # run, rewrite docs/normalizers-run.json and the README
    python benchmarks/normalizers.py --render         # only re-render from the existing file
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from _readme_blocks import REPO, run_pytest, save_run, write_block  # beside this script

DATA = REPO.parent / "shared" / "data" / "realspeech-dev" / "manifest.jsonl"
RUN = REPO / "docs" / "normalizers-run.json"
START, END = "<!-- normalizer-figures: benchmarks/normalizers.py writes this block -->", "<!-- /normalizer-figures -->"
MODEL = "faster-whisper/tiny.en"
NORMALIZERS = ("whisper-english", "speechlab-english")


def rescore(evaluation: dict, normalizer: str) -> tuple[float, tuple[float, float] | None, int]:
    """The evaluation's transcripts scored again with ``normalizer``: (WER, its interval, utterances)."""
    sys.path.insert(0, str(REPO))
    from pytest_speechlab import Output, Transcript, Utterance, evaluate, get_normalizer

    outputs = [Output(Utterance(u["utterance_id"], "", u["reference"], u["kind"]), Transcript(u["hypothesis"] or ""))
               for u in evaluation["utterances"] if u["status"] == "scored"]
    result = evaluate(MODEL, "realspeech-dev", outputs, get_normalizer(normalizer))
    return result.wer, result.wer_ci, len(result.scored)


def render(run: dict) -> str:
    (evaluation,) = run["evaluations"]
    figures = []
    for name in NORMALIZERS:
        wer, ci, n = rescore(evaluation, name)
        figures.append(f"`{name}` {wer:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    env = evaluation["environment"]
    return (f"On the real dev set ({n} speech clips), {MODEL}'s transcripts read WER {figures[0]} and {figures[1]} "
            f"(recorded {run['meta']['recorded']} by `python benchmarks/normalizers.py`: {env.get('cpu')}, "
            f"{evaluation['model_info'].get('backend_version')}; the same transcripts, scored twice).")


def record(data: Path) -> None:
    if not data.is_file():
        sys.exit(f"{data} is not there: give --data PATH/manifest.jsonl")
    run_pytest(["suites/test_asr_accuracy.py", "--speechlab-no-db", "--speechlab-model", MODEL,
                "--speechlab-dataset", str(data), "--speechlab-json", str(RUN)], REPO, "the figures")
    save_run(RUN, {"recorded": datetime.date.today().isoformat()}, keep_alignment=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="only re-render the README from the existing file")
    parser.add_argument("--data", type=Path, default=DATA, help="the realspeech-dev manifest")
    args = parser.parse_args()
    if not args.render:
        record(args.data)
    write_block(START, END, render(json.loads(RUN.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
