"""Dataset loading: JSONL manifests and LibriSpeech-layout folders, into Utterances.

Only text is read here; audio stays on disk until the runner needs it. Every problem with a line
becomes an InputError naming the manifest line; the good lines still load.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._types import InputError, SpeechlabError, Utterance

KINDS = ("speech", "nonspeech")


@dataclass
class Dataset:
    name: str
    path: str
    utterances: list[Utterance] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    @property
    def has_speech(self) -> bool:
        return any(u.kind == "speech" for u in self.utterances)


def display_path(path: Path) -> str:
    """A path as the user would write it: relative to the working directory where possible."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def load_dataset(path: str | os.PathLike, name: str | None = None) -> Dataset:
    p = Path(path)
    if p.is_dir():
        return _load_librispeech(p, name or display_path(p))
    if not p.is_file():
        raise SpeechlabError(f"dataset {display_path(p)!r} not found (expected a .jsonl manifest or a folder)")
    return _load_manifest(p, name or display_path(p))


def _load_manifest(path: Path, name: str) -> Dataset:
    shown = display_path(path)
    base = path.parent
    dataset = Dataset(name, str(path))
    seen: dict[str, int] = {}
    for where, entry in json_lines(path, dataset.errors):
        try:
            utt = _utterance_from_entry(entry, base, where, shown)
        except _LineError as exc:
            dataset.errors.append(InputError(where, str(exc), exc.utterance_id))
            continue
        if utt.id in seen:
            dataset.errors.append(InputError(where, f"duplicate id {utt.id!r} (first on {seen[utt.id]})", utt.id))
            continue
        seen[utt.id] = where[len(shown) + 1:]  # "line N"
        dataset.utterances.append(utt)
    return dataset


def json_lines(path: Path, errors: list[InputError]):
    """(where, parsed JSON) for each line of a JSONL file (manifests, TTS texts, chat prompts); blank
    and ``#`` lines are skipped, a line that is not UTF-8 or not JSON becomes an error instead."""
    with open(path, "rb") as fh:
        for where, line in _decoded_lines(fh, display_path(path), errors):
            if not line or line.startswith("#"):
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(InputError(where, f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"))


def _decoded_lines(lines, shown: str, errors: list[InputError]):
    """(where, stripped text) for each line; a line that is not UTF-8 becomes an error instead."""
    for lineno, raw in enumerate(lines, start=1):
        where = f"{shown} line {lineno}"
        try:
            yield where, raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            errors.append(InputError(where, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"))


class _LineError(ValueError):
    def __init__(self, message: str, utterance_id: str | None = None):
        super().__init__(message)
        self.utterance_id = utterance_id


def _utterance_from_entry(entry: object, base: Path, where: str, shown_manifest: str) -> Utterance:
    if not isinstance(entry, dict):
        raise _LineError(f"expected a JSON object, got {type(entry).__name__}")
    audio = entry.get("audio", entry.get("audio_filepath"))
    if not isinstance(audio, str) or not audio:
        raise _LineError("missing 'audio' (or 'audio_filepath'): the path of the audio file")
    utt_id = str(entry.get("id") or Path(audio).with_suffix("").as_posix())
    kind = entry.get("kind", "speech")
    if kind not in KINDS:
        raise _LineError(f"'kind' must be one of {KINDS}, got {kind!r}", utt_id)
    text = entry.get("text")
    if text is not None and not isinstance(text, str):
        raise _LineError(f"'text' must be a string, got {type(text).__name__}", utt_id)
    if kind == "speech" and text is None:
        raise _LineError("missing 'text' (the reference transcript)", utt_id)
    if kind == "speech" and not text.strip():
        raise _LineError(
            "empty 'text' on a speech utterance (mark it \"kind\": \"nonspeech\" if it has no speech)",
            utt_id,
        )
    audio_path = base / audio
    if not audio_path.is_file():
        raise _LineError(
            f"audio {audio!r} not found (relative to {display_path(base) or '.'}/)", utt_id
        )
    duration = entry.get("duration", entry.get("duration_s"))
    if duration is not None and not (isinstance(duration, (int, float)) and duration > 0):
        raise _LineError(f"'duration' must be a positive number of seconds, got {duration!r}", utt_id)
    language = entry.get("language") or None
    return Utterance(
        id=utt_id,
        audio_path=str(audio_path),
        text=text or "",
        kind=kind,
        language=language,
        duration=float(duration) if duration is not None else None,
        source=where,
    )


def _load_librispeech(root: Path, name: str) -> Dataset:
    """``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with lines ``ID TEXT``, audio ``ID.flac``."""
    dataset = Dataset(name, str(root))
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise SpeechlabError(f"dataset folder {display_path(root)!r} has no *.trans.txt files (LibriSpeech layout)")
    for trans in transcripts:
        for where, line in _decoded_lines(trans.read_bytes().splitlines(), display_path(trans), dataset.errors):
            if not line:
                continue
            utt_id, _, text = line.partition(" ")
            if not text.strip():
                dataset.errors.append(InputError(where, f"no transcript after id {utt_id!r}", utt_id))
                continue
            audio = next((trans.parent / f"{utt_id}{ext}" for ext in (".flac", ".wav")
                          if (trans.parent / f"{utt_id}{ext}").is_file()), None)
            if audio is None:
                dataset.errors.append(
                    InputError(where, f"audio '{utt_id}.flac' not found next to the transcript", utt_id)
                )
                continue
            dataset.utterances.append(
                Utterance(id=utt_id, audio_path=str(audio), text=text.strip(), language="en", source=where)
            )
    return dataset
