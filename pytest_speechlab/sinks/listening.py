"""Listening tests made from recorded TTS evaluations: each system's clip of every text all the
systems have, copied (by content digest) into the test's own folder, so that the test outlives the
temporary folder the synthesis wrote them to; the test is a row of the results database."""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from .._types import SpeechlabError
from .report import AUDIO_TYPES
from .store import Store

KINDS = ("acr", "ab")  # ACR mean opinion score (1-5); A/B preference between two systems


def _system(store: Store, ref: str) -> tuple[str, str, str]:
    """RUN:MODEL or RUN:MODEL:DATASET -> (run id, model, dataset)."""
    parts = ref.split(":", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise SpeechlabError(f"{ref!r}: give RUN:MODEL or RUN:MODEL:TEXT_SET (a run id, baseline name or 'latest')")
    run_id = store.resolve(parts[0])
    have = sorted(d for m, d in store.evaluations(run_id) if m == parts[1])
    dataset = parts[2] if len(parts) == 3 else (have[0] if len(have) == 1 else None)
    if dataset is None or dataset not in have:
        raise SpeechlabError(f"{ref!r}: run {run_id[:8]} has {', '.join(have) or 'no evaluation'} of {parts[1]!r}"
                             + ("; name one as RUN:MODEL:TEXT_SET" if len(have) > 1 else ""))
    return run_id, parts[1], dataset


def _audio(row: dict) -> bool:
    """A stored row's clip may be copied into a test: an existing file with an audio extension that
    soundfile reads (a row of an imported run may name any file)."""
    import soundfile

    path = row.get("audio_path")
    if not isinstance(path, str) or "\x00" in path or Path(path).suffix.lower().lstrip(".") not in AUDIO_TYPES:
        return False
    try:
        return Path(path).is_file() and soundfile.info(path).frames > 0
    except (RuntimeError, OSError, ValueError):  # soundfile.LibsndfileError is a RuntimeError
        return False


def create_test(store: Store, name: str, kind: str, refs: list[str], folder: Path) -> dict:
    """A listening test over the clips of ``refs`` (two for A/B, one or more for ACR), their audio
    copied under ``folder``. Returns its spec."""
    if kind not in KINDS:
        raise SpeechlabError(f"kind {kind!r}: one of {', '.join(KINDS)}")
    if not name.strip() or len(name) > 100 or not name.isprintable() or any(c in name for c in "/\\?#%"):
        raise SpeechlabError("a listening test's name: 1-100 printable characters, none of / \\ ? # % (it is part "
                             "of the rating pages' addresses)")
    if (kind == "ab") != (len(refs) == 2) or not refs:
        raise SpeechlabError("an A/B test compares two systems; an ACR test rates one or more")
    systems, clips = [], {}
    for i, ref in enumerate(refs, 1):
        run_id, model, dataset = _system(store, ref)
        label = f"S{i}"
        systems.append({"label": label, "run": run_id, "model": model, "dataset": dataset})
        clips[label] = {str(r["utterance_id"]): r for r in store.utterances(run_id, model, dataset) if _audio(r)}
    common = sorted(set.intersection(*(set(c) for c in clips.values())))
    if not common:
        raise SpeechlabError("no text has a clip of every system on disk (synthesized clips live in pytest's "
                             "temporary folder, kept for the last three sessions: create the test after the runs)")
    target = folder / (re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:40] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8])
    target.mkdir(parents=True, exist_ok=True)
    items = []
    for item in common:
        stored = {}
        for label, rows in clips.items():
            source = Path(rows[item]["audio_path"])
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
            copy = target / f"{digest}{source.suffix.lower() or '.wav'}"
            if not copy.exists():
                shutil.copyfile(source, copy)
            stored[label] = str(copy.resolve())
        items.append({"item": item, "text": clips["S1"][item].get("reference") or "", "clips": stored})
    spec = {"systems": systems, "items": items, "folder": str(target.resolve())}
    store.create_listening_test(name, kind, spec)
    return spec


def model_scores(store: Store | None, model: str) -> list[float]:
    """Every ACR rating (1-5) listeners gave clips of ``model``, in every listening test."""
    if store is None:
        return []
    labels = {t["name"]: {s["label"] for s in t["spec"]["systems"] if s.get("model") == model}
              for t in store.listening_tests() if t["kind"] == "acr" and isinstance(t.get("spec"), dict)}
    return [float(v) for r in store.ratings() if labels.get(r["test"]) and isinstance(r.get("score"), dict)
            for label, v in r["score"].items() if label in labels[r["test"]] and isinstance(v, (int, float))]
