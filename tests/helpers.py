"""Helpers for the project's tests: audio and manifests written on the fly, a fake model plugin."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent

# The fake datasets have 3-4 utterances: a project that judges their figures (to test the checks
# themselves) lowers the minimum samples (default 10: "too few to judge"; tests/test_small_samples.py)
SMALL_SAMPLES = {"wer": 1, "cer": 1, "hallucination_rate": 1, "nonspeech_hallucination_rate": 1, "rtf": 1}
SMALL_SAMPLES_TOML = """
[tool.speechlab.min_samples]
wer = 1
cer = 1
hallucination_rate = 1
nonspeech_hallucination_rate = 1
rtf = 1
"""
PG_URL = os.environ.get("SPEECHLAB_TEST_POSTGRES_URL")


def fresh_postgres_url() -> str:
    """A new, empty database on the test server, so tests do not see each other."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def write_audio(path: Path, seconds: float, rate: int = 16000, channels: int = 1, fmt: str | None = None,
                level: float = 0.1) -> Path:
    """A deterministic tone of exactly ``seconds`` (so a fake model can key on the length)."""
    frames = int(round(seconds * rate))
    tone = level * np.sin(2 * np.pi * 220 * np.arange(frames) / rate).astype(np.float32)
    data = tone if channels == 1 else np.stack([tone] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, format=fmt)
    return path


def write_manifest(path: Path, lines: list[object]) -> Path:
    """Each item: a dict (written as JSON) or a str (written verbatim, for malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for item in lines:
            fh.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return path


# A fake model plugin for pytester runs: it "recognizes" a clip by its length in seconds, which is
# what the tests control. It counts its loads in a file so that tests can check "built once".
FAKE_MODEL_CONFTEST = '''
import os
from pytest_speechlab import hookimpl, Transcript, Segment

TEXTS = {
    "1.00": "the cat sat on the mat",
    "1.50": "a quick brown fox",
    "2.00": "hello world",
}

class LengthModel:
    sample_rate = 16000

    def __init__(self, params):
        self.errors = params.get("errors", {})
        self.raise_on = params.get("raise_on")
        self.flaky = params.get("flaky")
        self.calls = 0

    def transcribe(self, audio):
        key = f"{len(audio) / self.sample_rate:.2f}"
        if key == self.raise_on:
            raise RuntimeError("decoder exploded")
        text = self.errors.get(key, TEXTS.get(key, ""))
        if key == self.flaky:
            self.calls += 1
            text = text if self.calls % 2 else text.upper() + " again"
        return Transcript(text, (Segment(0.0, len(audio) / self.sample_rate, text),))

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "fake 1.0", "languages": ["en"]}


class BatchModel(LengthModel):
    def transcribe_batch(self, audios):
        drift = self.errors.get("batched", {})
        out = [self.transcribe(a) for a in audios]
        return [Transcript(drift.get(f"{len(a) / self.sample_rate:.2f}", t.text), t.segments) for a, t in zip(audios, out)]


def load(params):
    if params.get("batch"):
        return BatchModel(params)
    with open(os.environ["FAKE_LOAD_LOG"], "a") as fh:
        fh.write(params.get("label", "?") + "\\n")
    return LengthModel(params)


@hookimpl
def speechlab_register_models(register):
    register("fake/perfect", task="asr", load=load, backend="fake", weights="none",
             params={"label": "perfect"})
    register("fake/sloppy", task="asr", load=load, backend="fake", weights="none",
             params={"label": "sloppy", "errors": {"1.00": "the bat sat on mat mat mat", "2.00": "hello"}})
    register("fake/raises", task="asr", load=load, backend="fake", weights="none",
             params={"label": "raises", "raise_on": "1.50"})
    register("fake/flaky", task="asr", load=load, backend="fake", weights="none",
             params={"label": "flaky", "flaky": "2.00"})
    register("fake/batchy", task="asr", load=load, backend="fake", weights="none", params={"batch": True})
    register("fake/batch-drift", task="asr", load=load, backend="fake", weights="none",
             params={"batch": True, "errors": {"batched": {"2.00": "hello word"}}})
'''


def make_fake_dataset(root: Path) -> Path:
    """Three speech clips the fake model knows, one non-speech clip; returns the manifest."""
    write_audio(root / "a.wav", 1.0)
    write_audio(root / "b.flac", 1.5, rate=44100, channels=2, fmt="FLAC")  # resampled + downmixed
    write_audio(root / "c.wav", 2.0, rate=22050)
    write_audio(root / "quiet.wav", 3.0, level=0.0)
    return write_manifest(root / "manifest.jsonl", [
        {"id": "a", "audio": "a.wav", "text": "The cat sat on the mat."},
        {"id": "b", "audio": "b.flac", "text": "A quick brown fox"},
        {"id": "c", "audio": "c.wav", "text": "Hello, world!"},
        {"id": "quiet", "audio": "quiet.wav", "kind": "nonspeech"},
    ])


def load_log(root: Path) -> list[str]:
    log = root / "loads.log"
    return log.read_text().split() if log.exists() else []
