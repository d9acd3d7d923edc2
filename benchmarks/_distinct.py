"""A speech set of N distinct clips built from the project's speech fixtures, for measuring at a
size past the fixtures: clip i is fixture clip i mod 33 (those with speech and a transcript)
through the perturbation chain ``noise:snr=45`` seeded by its own id, so that no two clips have the
same content (nor the same inference cache key) and the transcripts stay those of the fixtures
(white noise 45 dB below the speech). 16 kHz mono FLAC and a JSONL manifest.

``INSTANT`` is the source of a module with an instant model (one fixed transcript, the audio not
looked at) and its registration hook: written next to the set, imported by the benchmarks'
child processes and Ray workers, so that what they time is the harness."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


INSTANT = """
from pytest_speechlab import Transcript, hookimpl


class Instant:
    sample_rate = 16000

    def transcribe(self, audio):
        return Transcript("yes please")

    def transcribe_batch(self, audios):
        return [Transcript("yes please") for _ in audios]

    def info(self):
        return {"backend_version": "instant 1"}


def load(params):
    return Instant()


@hookimpl
def speechlab_register_models(register):
    register("instant/asr", task="asr", load=load, backend="instant")
"""


def build_distinct(folder: Path, count: int) -> Path:
    import soundfile
    import soxr

    from pytest_speechlab import load_dataset
    from pytest_speechlab._audio import RawAudio, read_audio
    from pytest_speechlab._builtin import fixtures_dir
    from pytest_speechlab._perturb import apply_chain, parse_chain

    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    if manifest.is_file() and len(manifest.read_text().splitlines()) == count:
        return manifest
    sources = []
    for u in load_dataset(fixtures_dir() / "speech" / "manifest.jsonl").utterances:
        if u.kind == "speech" and u.text:
            raw = read_audio(u.audio_path)
            sources.append((u, RawAudio(soxr.resample(raw.samples, raw.sample_rate, 16000), 16000)))
    chain = parse_chain("noise:snr=45")
    with open(manifest, "w") as fh:
        for i in range(count):
            source, raw = sources[i % len(sources)]
            clip_id = f"{source.id}-{i:05d}"
            heard = apply_chain(raw, chain, clip_id)
            soundfile.write(folder / f"{clip_id}.flac", heard.samples, heard.sample_rate, subtype="PCM_16")
            fh.write(json.dumps({"id": clip_id, "audio": f"{clip_id}.flac", "text": source.text,
                                 "duration": round(len(heard.samples) / heard.sample_rate, 3)}) + "\n")
    return manifest
