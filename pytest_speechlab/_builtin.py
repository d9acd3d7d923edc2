"""Built-in plugin: registers the project's own generated fixtures through the same hook a third
party uses."""
from __future__ import annotations

from pathlib import Path

from ._hookspecs import hookimpl


def fixtures_dir() -> Path:
    """The generated fixtures, shipped in the wheel as ``pytest_speechlab.fixtures``."""
    from importlib.resources import files

    try:
        return Path(str(files("pytest_speechlab.fixtures")))
    except ModuleNotFoundError:  # running from a source tree that is not installed
        return Path(__file__).resolve().parent.parent / "fixtures"


@hookimpl
def speechlab_register_datasets(register):
    root = fixtures_dir()
    register(
        "speechlab/speech",
        path=root / "speech" / "manifest.jsonl",
        description="34 English sentences spoken by the packaged piper voice; one then 11 s of silence, one under loud noise (generated)",
    )
    register(
        "speechlab/nonspeech",
        path=root / "nonspeech" / "manifest.jsonl",
        description="13 non-speech clips: silence, hiss, noises, hum, tones, chords, clicks, reversed/vocoded/babbled speech (generated)",
    )
    register(
        "speechlab/stress",
        path=root / "stress" / "manifest.jsonl",
        description="sentences followed by 10 s of speech-like noise: hallucination triggers, not a default (generated)",
    )
    register(
        "speechlab/tts-texts",
        path=root / "tts" / "texts.jsonl",
        description="TTS text set: 24 sentences with numbers, abbreviations, names, punctuation, long sentences",
    )
    register(
        "speechlab/chat-prompts",
        path=root / "chat" / "prompts.jsonl",
        description="chat prompt set: 10 questions with expected content or a topic; 6 marked spoken",
    )
