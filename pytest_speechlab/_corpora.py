"""Readers for corpora in the formats other tools write: a Hugging Face dataset (parquet files with
an Audio column, or a folder written by ``save_to_disk``) and lhotse manifests (recordings +
supervisions, or a CutSet; ``.jsonl`` or ``.jsonl.gz``).

Each reader yields ``(where, entry)``: an entry is a manifest line's fields (audio, text, id,
language, kind, offset, duration), checked by ``_dataset`` like a JSONL line, so every format
gets the same checks and errors. Audio embedded in a dataset (the bytes of a Hugging Face Audio
column) is written once to a content-addressed folder (``SPEECHLAB_AUDIO_DIR``, default
``~/.cache/pytest-speechlab/audio``), its name the hash of its bytes; pyarrow reads the files in
batches, so a large dataset is never held in memory whole.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ._types import InputError, SpeechlabError

# CSV/TSV/dataset column names (lower case) -> the manifest field they fill (Common Voice's and the
# Hugging Face hub's usual names among them)
COLUMNS = {"audio": "audio", "path": "audio", "file": "audio", "filename": "audio", "audio_filepath": "audio",
           "text": "text", "sentence": "text", "transcript": "text", "transcription": "text",
           "normalized_text": "text", "raw_text": "text",
           "id": "id", "utterance_id": "id", "segment_id": "id", "language": "language", "locale": "language",
           "lang": "language", "kind": "kind", "duration": "duration", "offset": "offset"}

# Language names lhotse recipes write in supervisions ("English") -> ISO 639-1
LANGUAGE_NAMES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "swedish": "sv", "danish": "da", "norwegian": "no", "finnish": "fi", "polish": "pl",
    "czech": "cs", "russian": "ru", "ukrainian": "uk", "greek": "el", "turkish": "tr", "arabic": "ar",
    "hebrew": "he", "persian": "fa", "hindi": "hi", "bengali": "bn", "tamil": "ta", "telugu": "te",
    "urdu": "ur", "chinese": "zh", "mandarin": "zh", "cantonese": "yue", "japanese": "ja", "korean": "ko",
    "thai": "th", "vietnamese": "vi", "indonesian": "id", "malay": "ms", "welsh": "cy", "catalan": "ca",
    "hungarian": "hu", "romanian": "ro", "swahili": "sw", "burmese": "my", "khmer": "km", "lao": "lo",
}

_AUDIO_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"),
                (b"\xff\xf3", ".mp3"), (b"FORM", ".aiff"))


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a file (b"" when it cannot be read): for detecting formats."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


MAX_LINE_BYTES = 16 << 20  # one line of a manifest is a record, not a file: a longer one is skipped, unread


def bounded_lines(fh, shown: str, errors: list[InputError]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each line of ``fh``; a line longer than MAX_LINE_BYTES becomes an
    error and is skipped in bounded pieces, never held whole (a gzip of a gigabyte line is small)."""
    lineno = 0
    while True:
        lineno += 1
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES:
            errors.append(InputError(f"{shown} line {lineno}", f"longer than {MAX_LINE_BYTES >> 20} MiB: skipped"))
            while line and not line.endswith(b"\n"):
                line = fh.readline(1 << 20)
            continue
        yield lineno, line


def _open(path: Path):
    """A binary file, gunzipped when it is gzip."""
    return gzip.open(path, "rb") if read_head(path, 2) == b"\x1f\x8b" else open(path, "rb")


def audio_dir() -> Path:
    """Where embedded audio is written: $SPEECHLAB_AUDIO_DIR (made absolute where it is read, so
    that the paths kept in the dataset hold wherever the run goes on), else the user's cache."""
    configured = os.environ.get("SPEECHLAB_AUDIO_DIR")
    folder = Path(configured).resolve() if configured else Path.home() / ".cache" / "pytest-speechlab" / "audio"
    if folder.exists() and not folder.is_dir():
        raise SpeechlabError(f"SPEECHLAB_AUDIO_DIR={configured}: {folder} is a file, not a folder for embedded audio")
    return folder


def store_audio(data: bytes, name_hint: str = "") -> Path:
    """Embedded audio as a file named by the SHA-256 of its bytes (written once, atomically); the
    suffix from the bytes' magic number, else from the dataset's own file name."""
    suffix = next((ext for magic, ext in _AUDIO_MAGIC if data.startswith(magic)), None)
    if suffix is None:
        hint = Path(name_hint).suffix.lower()
        suffix = hint if hint[1:].isalnum() and len(hint) <= 6 else ".bin"
    folder = audio_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpeechlabError(f"embedded audio cannot be written to {folder} ({exc.strerror or exc}); set "
                             "SPEECHLAB_AUDIO_DIR to a writable folder") from None
    path = folder / (hashlib.sha256(data).hexdigest()[:40] + suffix)
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


# -- Hugging Face datasets ------------------------------------------------------------------------


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise SpeechlabError("reading a Hugging Face dataset needs pyarrow: pip install 'pytest-speechlab[hf]'") from None
    return pyarrow


def is_huggingface(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".parquet" or read_head(path, 4) == b"PAR1"
    return path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()
                              or next(path.glob("*.parquet"), None) is not None)


def huggingface_files(path: Path) -> list[Path]:
    """The data files of a dataset: a parquet file; a folder of parquet shards; a ``save_to_disk``
    folder's arrow files (in ``state.json``'s order). A DatasetDict folder is one clear error."""
    if path.is_file():
        return [path]
    if (path / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in path.iterdir() if (p / "dataset_info.json").is_file())
        raise SpeechlabError(f"dataset {path}: a DatasetDict with splits {', '.join(splits) or '(none)'}: "
                             "give one split's folder")
    state = path / "state.json"
    if state.is_file():
        try:
            files = [path / Path(f["filename"]).name for f in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise SpeechlabError(f"{state}: not a datasets state.json ({type(exc).__name__}: {exc})") from None
        return files
    return sorted(path.glob("*.parquet")) or sorted(path.glob("*.arrow"))


def _batches(pa, file: Path):
    try:
        if file.suffix.lower() == ".arrow":
            with pa.memory_map(str(file)) as source:
                try:
                    reader = pa.ipc.open_stream(source)
                except pa.ArrowInvalid:
                    reader = pa.ipc.open_file(source)
                    yield from (reader.get_batch(i) for i in range(reader.num_record_batches))
                    return
                yield from reader
        else:
            yield from pa.parquet.ParquetFile(str(file)).iter_batches(batch_size=64)
    except (pa.ArrowException, OSError) as exc:
        raise SpeechlabError(f"{file}: not a readable {'arrow' if file.suffix == '.arrow' else 'parquet'} file "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None


def _audio_column(schema) -> str | None:
    """The column holding audio: a struct with ``bytes`` or ``path`` (the Audio feature), else a
    string column with an audio name."""
    for name in schema.names:
        kind = schema.field(name).type
        if hasattr(kind, "names") and ({"bytes", "path"} & set(kind.names)):
            return name
    return next((n for n in schema.names if COLUMNS.get(n.lower()) == "audio"), None)


def huggingface_entries(path: Path, shown: str, errors: list[InputError]) -> Iterator[tuple[str, dict]]:
    pa = _pyarrow()
    row = 0
    for file in huggingface_files(path):
        if not file.is_file():
            raise SpeechlabError(f"dataset {shown}: its data file {file.name} is missing")
        for batch in _batches(pa, file):
            audio = _audio_column(batch.schema)
            if audio is None:
                raise SpeechlabError(f"{file}: no audio column (an Audio feature, or one of "
                                     f"{sorted(k for k, v in COLUMNS.items() if v == 'audio')})")
            fields = {n: COLUMNS[n.lower()] for n in batch.schema.names if n != audio and n.lower() in COLUMNS
                      and COLUMNS[n.lower()] != "audio"}
            for values in batch.to_pylist():
                row += 1
                where = f"{shown} row {row}"
                entry: dict = {}
                for column, field_name in fields.items():
                    if values[column] not in (None, "") and field_name not in entry:
                        entry[field_name] = values[column]
                others = {n: v for n, v in values.items() if n != audio and n not in fields
                          and isinstance(v, (str, int, float, bool))}  # gender, accent...: slice fields
                if others:
                    entry["fields"] = others
                cell = values[audio]
                if isinstance(cell, dict) and isinstance(cell.get("bytes"), (bytes, bytearray)) and cell["bytes"]:
                    entry["audio"] = str(store_audio(bytes(cell["bytes"]), str(cell.get("path") or "")))
                elif isinstance(cell, dict) and isinstance(cell.get("path"), str):
                    entry["audio"] = cell["path"]  # not embedded: a path beside the dataset
                elif isinstance(cell, str):
                    entry["audio"] = cell
                else:
                    errors.append(InputError(where, f"column {audio!r} holds neither audio bytes nor a path"))
                    continue
                entry.setdefault("id", f"row-{row}")
                yield where, entry


# -- lhotse ---------------------------------------------------------------------------------------


def _records(path: Path, shown: str, errors: list[InputError]) -> Iterator[tuple[str, dict]]:
    """(where, object) per line of a .jsonl or .jsonl.gz file."""
    try:
        with _open(path) as fh:
            for lineno, raw in bounded_lines(fh, shown, errors):
                where = f"{shown} line {lineno}"
                try:
                    line = raw.decode("utf-8").strip()
                    if line:
                        record = json.loads(line)
                        if isinstance(record, dict):
                            yield where, record
                        else:
                            errors.append(InputError(where, f"a JSON {type(record).__name__}, not an object"))
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                    errors.append(InputError(where, f"not a JSON line ({type(exc).__name__})"))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise SpeechlabError(f"{shown}: unreadable ({type(exc).__name__}: {exc})") from None


def _first_record(path: Path) -> dict:
    try:
        with _open(path) as fh:
            head = fh.read(65536)
    except (OSError, EOFError):
        return {}
    try:
        record = json.loads(head.decode("utf-8", "replace").splitlines()[0])
    except (ValueError, IndexError):
        return {}
    return record if isinstance(record, dict) else {}


def _lhotse_kind(path: Path) -> str | None:
    """"cuts", "supervisions" or "recordings" for a lhotse manifest file, else None."""
    if not path.is_file() or not path.name.lower().endswith((".jsonl", ".jsonl.gz", ".json.gz")):
        return None
    first = _first_record(path)
    if "supervisions" in first and "recording" in first or str(first.get("type", "")).endswith("Cut"):
        return "cuts"
    if "recording_id" in first and "start" in first:
        return "supervisions"
    if "sources" in first and "sampling_rate" in first:
        return "recordings"
    return None


def _lhotse_pair(path: Path) -> tuple[Path, Path] | None:
    """(recordings, supervisions) in a folder, or beside a given supervisions/recordings file."""
    folder = path if path.is_dir() else path.parent
    if path.is_file():
        other = path.name.replace("supervisions", "recordings") if "supervisions" in path.name else \
            path.name.replace("recordings", "supervisions")
        pair = (folder / other, path) if "supervisions" in path.name else (path, folder / other)
        return pair if all(p.is_file() for p in pair) else None
    recordings = sorted(folder.glob("*recordings*.jsonl*"))
    supervisions = sorted(folder.glob("*supervisions*.jsonl*"))
    return (recordings[0], supervisions[0]) if len(recordings) == 1 and len(supervisions) == 1 else None


def is_lhotse(path: Path) -> bool:
    if path.is_dir():
        return _lhotse_pair(path) is not None
    kind = _lhotse_kind(path)
    return kind == "cuts" or (kind in ("supervisions", "recordings") and _lhotse_pair(path) is not None)


def _language(value) -> str | None:
    if not isinstance(value, str):
        return value
    return LANGUAGE_NAMES.get(value.strip().lower(), value)


def _source(recording: dict) -> str | None:
    """The file a lhotse recording reads (its first ``file`` source), or None."""
    sources = recording.get("sources")
    for source in sources if isinstance(sources, list) else ():
        if isinstance(source, dict) and source.get("type") == "file" and isinstance(source.get("source"), str):
            return source["source"]
    return None


def _segment(where: str, errors, recording, uid, start, duration, text, language, kind="speech", sup=None):
    if not isinstance(recording, dict):
        errors.append(InputError(where, "no recording", uid if isinstance(uid, str) else None))
        return None
    audio = _source(recording)
    if audio is None:
        types = sorted({str(s.get("type")) for s in recording.get("sources") or () if isinstance(s, dict)})
        errors.append(InputError(where, f"recording {str(recording.get('id'))[:80]!r} has no file source "
                                        f"(sources of type {', '.join(types) or 'none'} are not read)",
                                 uid if isinstance(uid, str) else None))
        return None
    entry = {"id": uid, "audio": audio, "offset": start, "duration": duration, "text": text,
             "language": _language(language), "kind": kind}
    if isinstance(sup, dict):  # a supervision's speaker, gender and custom fields: slice fields
        entry["fields"] = {**{k: sup[k] for k in ("speaker", "gender") if sup.get(k) is not None},
                           **(sup.get("custom") if isinstance(sup.get("custom"), dict) else {})}
    return entry


def lhotse_entries(path: Path, shown: str, errors: list[InputError]) -> Iterator[tuple[str, dict]]:
    """Each supervision one utterance (its recording's file, from its start for its duration); with
    a CutSet each cut one utterance, its supervisions' texts joined in time order (a cut without
    supervisions is a non-speech clip)."""
    if path.is_file() and _lhotse_kind(path) == "cuts":
        for where, cut in _records(path, shown, errors):
            sups = sorted((s for s in cut.get("supervisions") or () if isinstance(s, dict)),
                          key=lambda s: s.get("start") if isinstance(s.get("start"), (int, float)) else 0)
            texts = [s["text"] for s in sups if isinstance(s.get("text"), str) and s["text"].strip()]
            entry = _segment(where, errors, cut.get("recording"), cut.get("id"), cut.get("start"), cut.get("duration"),
                             " ".join(texts) if texts else None, next((s.get("language") for s in sups), None),
                             "speech" if texts else "nonspeech", sups[0] if sups else None)
            if entry:
                yield where, entry
        return
    recordings_path, supervisions_path = _lhotse_pair(path)
    recordings = {r.get("id"): r for _, r in _records(recordings_path, str(recordings_path.name), errors)}
    for where, sup in _records(supervisions_path, shown if path.is_file() else str(supervisions_path), errors):
        recording = recordings.get(sup.get("recording_id"))
        if recording is None:
            errors.append(InputError(where, f"recording {str(sup.get('recording_id'))[:80]!r} is not in "
                                            f"{recordings_path.name}", sup.get("id") if isinstance(sup.get("id"), str) else None))
            continue
        entry = _segment(where, errors, recording, sup.get("id"), sup.get("start"), sup.get("duration"),
                         sup.get("text"), sup.get("language"), sup=sup)
        if entry:
            yield where, entry
