"""Built-in plugin: registers the project's own generated fixtures through the same hook a third
party uses."""
from __future__ import annotations

from pathlib import Path

from ._dataset import load_dataset
from ._hookspecs import hookimpl
from ._longform import ensure_longform, longform_manifest


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
        "speechlab/multilingual",
        path=root / "multilingual" / "manifest.jsonl",
        description="18 sentences, two in each of de es fr it pt ru hi zh ja, spoken by eSpeak NG (generated; not a default)",
    )
    register(
        "speechlab/accents",
        path=root / "accents" / "manifest.jsonl",
        description="12 English sentences in each of four eSpeak NG accents, half in a female variant, with "
                    "the slice fields accent, gender and voice (generated; not a default): --speechlab-slice accent",
    )
    register(
        "speechlab/accents-cv",
        path=root / "accents" / "validated.tsv",
        description="the same 48 clips as a Common Voice style TSV (gender, accents, client_id, locale columns; "
                    "not a default): --speechlab-slice gender --speechlab-slice accents",
    )
    register(
        "speechlab/longform",
        path=longform_manifest(),
        description="one recording of 10+ minutes: the speech fixtures with pauses, noise, 60 s of silence "
                    "and music (built from the fixtures on first use; not a default)",
    )
    register(
        "speechlab/tts-texts",
        path=root / "tts" / "texts.jsonl",
        description="TTS text set: 24 sentences with numbers, abbreviations, names, punctuation, long sentences",
        kind="TTS text set",
    )
    register(
        "speechlab/chat-prompts",
        path=root / "chat" / "prompts.jsonl",
        description="chat prompt set: 10 questions with answer keys (accepted aliases, required and forbidden facts) or a topic; 6 marked spoken",
        kind="chat prompt set",
    )


@hookimpl
def speechlab_register_dataset_formats(register):
    register("speechlab-longform", detect=lambda path: path == longform_manifest(),
             load=lambda path, name: load_dataset(ensure_longform(fixtures_dir()), name),
             description="the built-in long-form fixture, built on first use")
