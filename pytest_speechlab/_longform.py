"""The long-form fixture: one recording of ten minutes or more built from the project's own speech
and non-speech fixtures (deterministic numpy, no synthesis), with its reference transcript.

The sentences of ``fixtures/speech`` follow one another in shuffled passes (never the same one twice
in a row) with pauses of 0.4-2.0 s of faint hiss (-60 dBFS); every seventh sentence is under pink
noise at -35 dBFS; at the middle a stretch of silence (60 s of hiss at -70 dBFS), at three quarters the
``music_chords`` clip (non-speech). 16 kHz mono FLAC. ``fixtures/make_fixtures.py --longform DIR``
writes it; the built-in dataset ``speechlab/longform`` builds it on first use in the cache folder
(``SPEECHLAB_CACHE_DIR``, default ``~/.cache/pytest-speechlab``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

RATE = 16000
VERSION = 1  # a change to what is built makes a new folder
SEED = 20261201
SILENCE_S = 60.0


def cache_dir() -> Path:
    return Path(os.environ.get("SPEECHLAB_CACHE_DIR") or Path.home() / ".cache" / "pytest-speechlab")


def _clip(path: Path):
    import numpy as np
    import soundfile as sf
    import soxr

    samples, rate = sf.read(path, dtype="float32", always_2d=False)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return (soxr.resample(samples, rate, RATE) if rate != RATE else samples).astype(np.float32)


def _noise(rng, n: int, dbfs: float, pink: bool = False):
    import numpy as np

    x = rng.standard_normal(n)
    if pink and n > 1:  # 1/f spectrum
        spectrum = np.fft.rfft(x)
        spectrum /= np.sqrt(np.arange(1, len(spectrum) + 1))
        x = np.fft.irfft(spectrum, n)
    x = x / (np.sqrt(np.mean(x ** 2)) or 1.0) * 10 ** (dbfs / 20)
    return x.astype(np.float32)


def build_longform(folder: Path, fixtures: Path, minutes: float = 10.0, name: str = "longform_10min") -> Path:
    """Write ``name``.flac and manifest.jsonl into ``folder``; returns the manifest's path."""
    import numpy as np
    import soundfile as sf

    speech = [json.loads(line) for line in (fixtures / "speech" / "manifest.jsonl").read_text().splitlines()
              if line.strip()]
    speech = [e for e in speech if e.get("kind", "speech") == "speech"]
    clips = [_clip(fixtures / "speech" / e["audio"]) for e in speech]
    music = _clip(fixtures / "nonspeech" / "music_chords.flac")
    rng = np.random.default_rng(SEED)
    target = minutes * 60
    pieces, texts, events = [], [], []
    t, count, last, silence_done, music_done = 0.0, 0, None, False, False

    def add(samples):
        nonlocal t
        pieces.append(samples)
        t += len(samples) / RATE

    while t < target:
        for index in rng.permutation(len(clips)):
            if t >= target:
                break
            if index == last:
                continue
            if not silence_done and t >= target / 2:
                events.append(f"silence (hiss at -70 dBFS) {t:.1f}-{t + SILENCE_S:.1f} s")
                add(_noise(rng, int(SILENCE_S * RATE), -70.0))
                silence_done = True
            if not music_done and t >= target * 0.75:
                events.append(f"music (no speech) {t:.1f}-{t + len(music) / RATE:.1f} s")
                add(music)
                music_done = True
            clip = clips[index]
            count += 1
            if count % 7 == 0:
                clip = clip + _noise(rng, len(clip), -35.0, pink=True)
            add(clip)
            texts.append(speech[index]["text"])
            add(_noise(rng, int(rng.uniform(0.4, 2.0) * RATE), -60.0))
            last = index
    audio = np.clip(np.concatenate(pieces), -1.0, 1.0)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / f"{name}.flac", audio, RATE, subtype="PCM_16")
    entry = {"id": name, "audio": f"{name}.flac", "text": " ".join(texts), "kind": "speech", "language": "en",
             "duration": round(len(audio) / RATE, 3),
             "description": f"{len(texts)} fixture sentences with pauses, every 7th under pink noise; " + "; ".join(events)}
    manifest = folder / "manifest.jsonl"
    manifest.write_text(json.dumps(entry) + "\n", encoding="utf-8")
    return manifest


def longform_manifest() -> Path:
    """Where the built-in ``speechlab/longform`` dataset lives (built by :func:`ensure_longform`)."""
    return cache_dir() / f"longform-{VERSION}" / "manifest.jsonl"


def ensure_longform(fixtures: Path) -> Path:
    """The built-in long-form fixture, built once (into a temporary folder, then moved into place,
    so that concurrent sessions never see half of it)."""
    manifest = longform_manifest()
    if manifest.is_file():
        return manifest
    manifest.parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".longform-", dir=manifest.parent.parent))
    tmp.chmod(0o755)
    try:
        build_longform(tmp, fixtures)
        try:
            os.replace(tmp, manifest.parent)
        except OSError:  # another session put it there first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
