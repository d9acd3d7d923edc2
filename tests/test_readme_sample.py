"""The README's sample output is what the code prints for a recorded run (docs/sample-run.json,
written by benchmarks/readme_sample.py from a real main job), never pasted."""
from __future__ import annotations

import importlib.util
import json

from helpers import REPO


def test_the_readme_sample_output_is_rendered_from_the_recorded_run():
    spec = importlib.util.spec_from_file_location("readme_sample", REPO / "benchmarks" / "readme_sample.py")
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    recorded = json.loads(sample.SAMPLE.read_text(encoding="utf-8"))
    readme = sample.README.read_text(encoding="utf-8")
    assert sample.readme_block(readme) == sample.block(sample.render(recorded)), (
        "README.md's sample output is not what the code prints for docs/sample-run.json: run "
        "`python benchmarks/readme_sample.py` (a real main job) or `--render` (the same run file)")
    # the sample is a real run of the README's main job: the default model on the embedded fixtures
    assert {(e["model"], e["dataset"]) for e in recorded["evaluations"]} == {
        ("faster-whisper/tiny.en", "speechlab/speech"), ("faster-whisper/tiny.en", "speechlab/nonspeech")}
    assert all(e["summary"]["computed"] == e["summary"]["processed"] for e in recorded["evaluations"])
