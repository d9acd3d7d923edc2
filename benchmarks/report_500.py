"""How big is the pytest-html report of a 500-utterance run, how long does it take to write, and
how long does headless Chromium take to load and lay it out?

    python benchmarks/report_500.py [--utterances 500]

Builds a throwaway project with a fake model (no inference, so the timing is the report's), where
the accuracy test fails so that the evidence section (alignments, findings, audio players) is
rendered too. Prints sizes and seconds; run it on a quiet machine and compare ratios in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CONFTEST = '''
import json, os
from pytest_speechlab import hookimpl, Transcript, Segment

class Fake:
    sample_rate = 16000
    def __init__(self, params):
        self.texts = json.load(open(os.environ["BENCH_TEXTS"]))
    def transcribe(self, audio):
        text = self.texts[str(len(audio))]
        return Transcript(text, (Segment(0.0, len(audio) / 16000, text, -0.3, 0.1, 1.2),))

@hookimpl
def speechlab_register_models(register):
    register("bench/fake", task="asr", load=Fake)
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=500)
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    root = Path(tempfile.mkdtemp(prefix="speechlab-report-bench-"))
    rng = np.random.default_rng(0)
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    texts, lines = {}, []
    for i in range(args.utterances):
        frames = 16000 + 160 * i  # distinct lengths identify the clips
        sf.write(root / f"{i}.flac", (0.05 * rng.standard_normal(frames)).astype(np.float32), 16000)
        ref = " ".join(rng.choice(words, size=8))
        hyp = ref if i % 3 else ref.replace(ref.split()[0], "<b>wrong</b>", 1) + " extra words here now"
        texts[str(frames)] = hyp
        lines.append(json.dumps({"id": f"u{i:04d}", "audio": f"{i}.flac", "text": ref}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "texts.json").write_text(json.dumps(texts))
    (root / "conftest.py").write_text(CONFTEST)
    (root / "suites").mkdir()
    shutil.copy(repo / "suites" / "test_asr_accuracy.py", root / "suites")
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\nspeechlab_models = ["bench/fake"]\n'
                                         'speechlab_datasets = ["manifest.jsonl"]\n')
    env = {**os.environ, "BENCH_TEXTS": str(root / "texts.json")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "--speechlab-no-db", "--html=report.html",
                    "--self-contained-html", "--speechlab-progress", "off", "-p", "no:cacheprovider"],
                   cwd=root, env=env, capture_output=True)
    pytest_s = time.perf_counter() - start
    report = root / "report.html"
    print(f"utterances: {args.utterances}")
    print(f"pytest run incl. writing the report: {pytest_s:.2f} s")
    print(f"report size: {report.stat().st_size / 1e6:.2f} MB")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        start = time.perf_counter()
        out = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", f"--user-data-dir={root / 'chrome'}",
                              "--dump-dom", report.as_uri()], capture_output=True, text=True)
        print(f"chromium load + scripts + DOM dump: {time.perf_counter() - start:.2f} s "
              f"({len(out.stdout) / 1e6:.2f} MB DOM)")
    else:
        print("chromium not installed: browser timing skipped")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
