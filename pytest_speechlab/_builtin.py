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
        description="33 English sentences spoken by the packaged piper voice, one followed by 11 s of silence (generated)",
    )
    register(
        "speechlab/nonspeech",
        path=root / "nonspeech" / "manifest.jsonl",
        description="9 non-speech clips: digital silence, hiss, white/brown/pink noise, hum, tones, clicks (generated)",
    )
