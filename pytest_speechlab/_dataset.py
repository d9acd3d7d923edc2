"""Dataset loading, into Utterances: JSONL manifests (NeMo's too), CSV/TSV with a header (Common
Voice's TSV included), LibriSpeech-layout folders, and formats plugins add through the
``speechlab_register_dataset_formats`` hook.

The format is chosen from the content and the extension; a file no format recognizes is one clear
error naming the formats there are, never a flood of per-line errors. Only text is read here; audio
stays on disk until the runner needs it. Every problem with a line becomes an InputError naming the
manifest line; the good lines still load.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ._corpora import (
    COLUMNS,
    bounded_lines,
    huggingface_entries,
    is_huggingface,
    is_lhotse,
    lhotse_entries,
    read_head,
)
from ._text import unicode_safe
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


@dataclass(frozen=True)
class DatasetFormat:
    """A way to read a dataset: ``detect(path) -> bool`` says whether a file or folder is in it
    (cheaply: the extension, the first bytes); ``load(path, name) -> Dataset`` reads it."""

    name: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, str], Dataset]
    description: str = ""


def _first_line(path: Path) -> str:
    for line in read_head(path).decode("utf-8", "replace").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return ""


def _is_jsonl(path: Path) -> bool:
    if path.is_dir():
        return False
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    return path.suffix.lower() not in (".csv", ".tsv") and _first_line(path).startswith("{")


def _is_table(path: Path) -> bool:
    if path.is_dir():
        return False
    if path.suffix.lower() in (".csv", ".tsv"):
        return True
    header = _first_line(path)
    return not header.startswith("{") and _columns(header)[1] is not None


def _is_librispeech(path: Path) -> bool:
    return path.is_dir() and next(path.rglob("*.trans.txt"), None) is not None


def _entries_format(read):
    """A format whose reader yields (where, manifest entry): each checked like a JSONL line."""
    def load(path: Path, name: str) -> Dataset:
        dataset = Dataset(name, str(path))
        shown = display_path(path)
        _add_entries(dataset, read(path, shown, dataset.errors), path if path.is_dir() else path.parent, shown)
        return dataset
    return load


BUILTIN_FORMATS = [
    DatasetFormat("librispeech", _is_librispeech, lambda p, n: _load_librispeech(p, n),
                  "a folder of <speaker>/<chapter>/*.trans.txt with .flac/.wav audio"),
    DatasetFormat("lhotse", is_lhotse, _entries_format(lhotse_entries),
                  "lhotse manifests: recordings + supervisions (a folder, or either file), or a CutSet; "
                  ".jsonl or .jsonl.gz"),
    DatasetFormat("huggingface", is_huggingface, _entries_format(huggingface_entries),
                  "a Hugging Face dataset: parquet (a file or a folder of shards) or a save_to_disk folder, "
                  "with an Audio column (needs pyarrow)"),
    DatasetFormat("jsonl", _is_jsonl, lambda p, n: _load_manifest(p, n),
                  "JSON lines: audio (or NeMo's audio_filepath), text, id, kind, language, duration, offset"),
    DatasetFormat("csv", _is_table, lambda p, n: _load_table(p, n),
                  "CSV or TSV with a header: audio (or path, file), text (or sentence, transcript), id, "
                  "language (or locale), kind; Common Voice's TSV with its clips/ folder"),
]

# What a file that no format reads probably is, for the error message.
_KNOWN_OTHERS = ((b"PAR1", "a parquet file"), (b"SQLite format 3", "an SQLite database"), (b"PK", "a zip archive"),
                 (b"\x1f\x8b", "a gzip file"), (b"RIFF", "an audio file"), (b"fLaC", "an audio file"))


def load_dataset(path: str | os.PathLike, name: str | None = None,
                 formats: list[DatasetFormat] | tuple = ()) -> Dataset:
    """Read the dataset at ``path`` with the first format (plugins' first, then the built-in ones)
    that recognizes it."""
    p = Path(path)
    every = [*formats, *BUILTIN_FORMATS]
    for fmt in every:
        if fmt in BUILTIN_FORMATS and not p.exists():  # a plugin's format may build what it reads
            raise SpeechlabError(f"dataset {display_path(p)!r} not found (expected a manifest file or a folder)")
        try:
            recognized = fmt.detect(p)
        except Exception:  # noqa: BLE001 - a plugin's detector that fails does not recognize it
            recognized = False
        if recognized:
            return fmt.load(p, name or display_path(p))
    head = read_head(p, 16) if p.is_file() else b""
    what = next((label for magic, label in _KNOWN_OTHERS if head.startswith(magic)),
                "a folder with no *.trans.txt files (not the LibriSpeech layout)" if p.is_dir() else "a file")
    raise SpeechlabError(
        f"dataset {display_path(p)!r}: {what} in no format pytest-speechlab reads. Formats: "
        + "; ".join(f"{f.name} ({f.description})" if f.description else f.name for f in every)
        + ". A plugin adds one with the speechlab_register_dataset_formats hook.")


def _load_manifest(path: Path, name: str) -> Dataset:
    dataset = Dataset(name, str(path))
    _add_entries(dataset, json_lines(path, dataset.errors), path.parent, display_path(path))
    return dataset


def _add_entries(dataset: Dataset, entries, base: Path, shown: str) -> None:
    """Each (where, manifest entry) checked into an Utterance of ``dataset``, or an error naming
    the line (a bad entry, a duplicate id); every format that reads lines of fields ends here."""
    seen: dict[str, str] = {}
    for where, entry in entries:
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


def json_lines(path: Path, errors: list[InputError]):
    """(where, parsed JSON) for each line of a JSONL file (manifests, TTS texts, chat prompts); blank
    and ``#`` lines are skipped, a line that is not UTF-8 or not JSON becomes an error instead."""
    with open(path, "rb") as fh:
        for where, line in _decoded_lines(fh, display_path(path), errors):  # lines bounded in length
            if not line or line.startswith("#"):
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(InputError(where, f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"))
            except RecursionError:
                errors.append(InputError(where, "not valid JSON (nested too deeply)"))


def _decoded_lines(fh, shown: str, errors: list[InputError]):
    """(where, stripped text) for each line of a binary file; a line that is not UTF-8, or longer
    than MAX_LINE_BYTES, becomes an error instead."""
    for lineno, raw in bounded_lines(fh, shown, errors):
        where = f"{shown} line {lineno}"
        try:
            yield where, raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            errors.append(InputError(where, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"))


class _LineError(ValueError):
    def __init__(self, message: str, utterance_id: str | None = None):
        super().__init__(message)
        self.utterance_id = utterance_id


MAX_ID_CHARS = 1000
MAX_TABLE_BYTES = 1 << 30  # a CSV/TSV manifest (Common Voice's largest TSVs are a few hundred MB)
MAX_TEXT_CHARS = 1_000_000  # a reference longer than this is not a transcript


_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")  # BCP 47-like: "en", "pt-BR", "zh_Hans"


def _string_field(entry: dict, key: str, utt_id: str | None = None, *, limit: int | None = None) -> str | None:
    """``entry[key]`` as a str (or None when absent or null): any other JSON type, an unpaired
    surrogate or an over-long value is a line error naming the field."""
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _LineError(f"{key!r} must be a string, got {_json_type(value)} {_shown(value)}", utt_id)
    if unicode_safe(value) != value:
        raise _LineError(f"{key!r} contains an unpaired UTF-16 surrogate (not valid Unicode text)", utt_id)
    if limit is not None and len(value) > limit:
        raise _LineError(f"{key!r} is {len(value):,} characters long (at most {limit:,})", utt_id)
    return value


def _json_type(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
            str: "a string"}.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


# the fields every format reads into the utterance itself; any other is kept as a slice field
MANIFEST_KEYS = frozenset({"id", "audio", "audio_filepath", "text", "kind", "language", "duration", "duration_s",
                           "offset", "fields"})
MAX_FIELDS, MAX_FIELD_NAME, MAX_FIELD_VALUE = 64, 64, 200


def _extra_fields(entry: dict) -> tuple[tuple[str, str], ...]:
    """An entry's other fields (and its ``fields`` table: lhotse's custom fields), as text: scalars
    only (a list or an object is no slice), names and values bounded, control characters kept out."""
    extra = {k: v for k, v in entry.items() if k not in MANIFEST_KEYS}
    if isinstance(entry.get("fields"), dict):
        extra.update(entry["fields"])
    out = {}
    for name, value in list(extra.items())[:MAX_FIELDS]:
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(name, str) or not isinstance(value, (str, int, float)) or value == "":
            continue
        name, text = unicode_safe(name.strip())[:MAX_FIELD_NAME], unicode_safe(str(value).strip())[:MAX_FIELD_VALUE]
        if name and text:
            out[name] = text
    return tuple(sorted(out.items()))


def _utterance_from_entry(entry: object, base: Path, where: str, shown_manifest: str) -> Utterance:
    if not isinstance(entry, dict):
        raise _LineError(f"expected a JSON object, got {_json_type(entry)}")
    key = "audio" if "audio" in entry else "audio_filepath"
    audio = _string_field(entry, key, limit=4096)
    if not audio:
        raise _LineError("missing 'audio' (or 'audio_filepath'): the path of the audio file")
    raw_id = entry.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, type(None))):
        raise _LineError(f"'id' must be a string or a number, got {_json_type(raw_id)} {_shown(raw_id)}")
    utt_id = _string_field({"id": str(raw_id)}, "id", limit=MAX_ID_CHARS) if raw_id not in (None, "") else None
    utt_id = utt_id or Path(audio).with_suffix("").as_posix()
    kind = _string_field(entry, "kind", utt_id) or "speech"
    if kind not in KINDS:
        raise _LineError(f"'kind' must be one of {KINDS}, got {kind!r}", utt_id)
    text = _string_field(entry, "text", utt_id, limit=MAX_TEXT_CHARS)
    if kind == "speech" and text is None:
        raise _LineError("missing 'text' (the reference transcript)", utt_id)
    if kind == "speech" and not text.strip():
        raise _LineError(
            "empty 'text' on a speech utterance (mark it \"kind\": \"nonspeech\" if it has no speech)",
            utt_id,
        )
    language = _string_field(entry, "language", utt_id, limit=64) or None
    if language is not None and not _LANGUAGE_CODE.fullmatch(language):
        raise _LineError(f"'language' must be a language code such as \"en\" or \"pt-BR\", got {_shown(language)}", utt_id)
    duration = entry.get("duration", entry.get("duration_s"))
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or not 0 < duration < 1e7):
        raise _LineError(f"'duration' must be a positive number of seconds, got {_shown(duration)}", utt_id)
    offset = entry.get("offset")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, (int, float)) or not 0 <= offset < 1e7):
        raise _LineError(f"'offset' must be a number of seconds from the start of the file, got {_shown(offset)}", utt_id)
    audio_path = _confined(base, audio, utt_id)
    if not audio_path.is_file():
        raise _LineError(f"audio {audio!r} {not_a_file(audio_path)} (relative to {display_path(base) or '.'}/)", utt_id)
    return Utterance(
        id=utt_id,
        audio_path=str(audio_path),
        text=text or "",
        kind=kind,
        language=language,
        duration=float(duration) if duration is not None else None,
        source=where,
        offset=float(offset) if offset is not None else None,
        fields=_extra_fields(entry),
    )


def _columns(header: str) -> tuple[str, list[str] | None]:
    """(delimiter, the header's columns) when the line is a CSV/TSV header naming an audio column;
    otherwise (delimiter, None)."""
    delimiter = "\t" if header.count("\t") >= header.count(",") else ","
    names = [c.strip().strip('"').lower() for c in header.split(delimiter)]
    return delimiter, names if any(COLUMNS.get(n) == "audio" for n in names) else None


def _load_table(path: Path, name: str) -> Dataset:
    """CSV or TSV with a header row. An audio path is relative to the file's folder, or, as in a
    Common Voice release, to the ``clips/`` folder beside it."""
    shown = display_path(path)
    dataset = Dataset(name, str(path))
    if path.stat().st_size > MAX_TABLE_BYTES:  # read whole (a quoted field may span lines): bounded first
        raise SpeechlabError(f"{shown}: {path.stat().st_size >> 20} MiB, more than the {MAX_TABLE_BYTES >> 20} MiB "
                             "a CSV/TSV manifest is read up to; split it, or write JSONL (read line by line)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpeechlabError(f"{shown}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")), None)
    if start is None:
        return dataset
    if "\x00" in lines[start]:  # else every row would be "missing 'text'" for a column name spoilt by it
        raise SpeechlabError(f"{shown} line {start + 1}: the header holds a NUL byte (at character "
                             f"{lines[start].index(chr(0)) + 1}); the file is damaged or not a CSV/TSV")
    delimiter, names = _columns(lines[start])
    if names is None:
        raise SpeechlabError(f"{shown} line {start + 1}: the header names no audio column "
                             f"(one of {sorted(k for k, v in COLUMNS.items() if v == 'audio')})")
    base = path.parent / "clips" if (path.parent / "clips").is_dir() else path.parent
    reader = csv.reader(io.StringIO("\n".join(lines[start + 1:])), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)

    def entries():
        for offset, cells in enumerate(reader, start=start + 2):
            where = f"{shown} line {offset}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                dataset.errors.append(InputError(where, f"{len(cells)} columns, the header has {len(names)}"))
                continue
            entry: dict = {}
            for column, cell in zip(names, cells):
                field_name = COLUMNS.get(column)
                if field_name and cell.strip() and field_name not in entry:
                    entry[field_name] = cell.strip()
                elif not field_name and cell.strip():  # age, gender, accents...: a slice field
                    entry.setdefault("fields", {})[column] = cell.strip()
            for number in ("duration", "offset"):
                if number in entry:
                    try:
                        entry[number] = float(entry[number])
                    except ValueError:
                        pass  # reported by the manifest check with the value
            yield where, entry

    _add_entries(dataset, entries(), base, shown)
    return dataset


def not_a_file(path: Path) -> str:
    """Why ``path`` is not an audio file: missing, or what it is instead (a folder, a FIFO, a device)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "not found"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"is {what}, not an audio file"
    return "is not a regular file"


def _confined(base: Path, audio: str, utt_id: str | None) -> Path:
    """The audio path, relative to the manifest's folder; an absolute path is taken as written (a
    manifest may point at shared storage), a NUL byte or a name the filesystem refuses is a line error."""
    if "\x00" in audio:
        raise _LineError("'audio' contains a NUL byte", utt_id)
    try:
        path = base / audio
        path.is_file()  # over-long or otherwise unusable names raise here
    except (OSError, ValueError) as exc:
        raise _LineError(f"audio {audio[:80]!r}: unusable path ({type(exc).__name__})", utt_id) from None
    return path


def _load_librispeech(root: Path, name: str) -> Dataset:
    """``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with lines ``ID TEXT``, audio ``ID.flac``."""
    dataset = Dataset(name, str(root))
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise SpeechlabError(f"dataset folder {display_path(root)!r} has no *.trans.txt files (LibriSpeech layout)")
    seen: dict[str, str] = {}
    for trans in transcripts:
        with open(trans, "rb") as fh:
            lines = list(_decoded_lines(fh, display_path(trans), dataset.errors))
        for where, line in lines:
            if not line:
                continue
            utt_id, _, text = line.partition(" ")
            if not text.strip():
                dataset.errors.append(InputError(where, f"no transcript after id {utt_id!r}", utt_id))
                continue
            if utt_id in seen:
                dataset.errors.append(InputError(where, f"duplicate id {utt_id!r} (first in {seen[utt_id]})", utt_id))
                continue
            if "/" in utt_id or "\\" in utt_id or utt_id in (".", ".."):
                dataset.errors.append(InputError(where, f"id {utt_id[:80]!r} is not a file name", utt_id))
                continue
            audio = next((trans.parent / f"{utt_id}{ext}" for ext in (".flac", ".wav")
                          if (trans.parent / f"{utt_id}{ext}").is_file()), None)
            if audio is None:
                dataset.errors.append(
                    InputError(where, f"audio '{utt_id}.flac' not found next to the transcript", utt_id)
                )
                continue
            seen[utt_id] = where
            dataset.utterances.append(
                Utterance(id=utt_id, audio_path=str(audio), text=text.strip(), language="en", source=where)
            )
    return dataset
