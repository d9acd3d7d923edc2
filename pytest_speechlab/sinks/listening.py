"""Listening tests made from recorded TTS evaluations: each system's clip of every text all the
systems have, copied (by content digest) into the test's own folder, so that the test outlives the
temporary folder the synthesis wrote them to, with the DNSMOS OVRL each clip was given in its run;
the test is a row of the results database. A MUSHRA test adds a reference system's clip twice (the
open reference and a hidden one) and a low-pass anchor made from it (3.5 kHz, BS.1534-3)."""
from __future__ import annotations

import hashlib
import math
import re
import shutil
from pathlib import Path

from .._types import SpeechlabError
from ..metrics.listening import ANCHOR, REFERENCE
from .report import AUDIO_TYPES
from .store import Store

KINDS = ("acr", "ab", "mushra")  # ACR mean opinion score (1-5); A/B preference; MUSHRA (0-100)
ANCHOR_RATE = 7000  # the anchor: the reference through a 3.5 kHz low pass (resampled to 7 kHz and back)


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


def _dnsmos(store: Store, run_id: str, model: str, dataset: str) -> dict[str, float]:
    """Item -> DNSMOS OVRL of the clip the run synthesized for it (recorded with its TTS evaluation)."""
    for row in store.run(run_id)["aggregates"]:
        if row["model"] == model and row["dataset"] == dataset and isinstance(row.get("metrics"), dict):
            quality = (row["metrics"].get("tts") or {}).get("quality") if isinstance(row["metrics"].get("tts"), dict) else None
            found = quality.get("ovrl") if isinstance(quality, dict) else None
            if isinstance(found, dict):
                return {str(k): float(v) for k, v in found.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return {}


def _anchor(source: Path, target: Path) -> Path:
    """The reference clip low-passed at 3.5 kHz: MUSHRA's low anchor, made once per reference clip
    (``source`` is the test's copy, named by its content digest)."""
    path = target / f"anchor-{source.stem}.wav"
    if not path.exists():
        import soundfile
        import soxr

        samples, rate = soundfile.read(str(source), dtype="float32", always_2d=False)
        if rate > ANCHOR_RATE:
            samples = soxr.resample(soxr.resample(samples, rate, ANCHOR_RATE), ANCHOR_RATE, rate)
        soundfile.write(str(path), samples.clip(-1.0, 1.0), rate, subtype="PCM_24")
    return path


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


def create_test(store: Store, name: str, kind: str, refs: list[str], folder: Path, reference: str | None = None) -> dict:
    """A listening test over the clips of ``refs`` (two for A/B, one or more for ACR and MUSHRA; a
    MUSHRA test also needs ``reference``), their audio copied under ``folder``. Returns its spec."""
    if kind not in KINDS:
        raise SpeechlabError(f"kind {kind!r}: one of {', '.join(KINDS)}")
    if not name.strip() or len(name) > 100 or not name.isprintable() or any(c in name for c in "/\\?#%"):
        raise SpeechlabError("a listening test's name: 1-100 printable characters, none of / \\ ? # % (it is part "
                             "of the rating pages' addresses)")
    if not refs or (kind == "ab" and len(refs) != 2):
        raise SpeechlabError("an A/B test compares two systems; an ACR or MUSHRA test rates one or more")
    if (kind == "mushra") != (reference is not None):
        raise SpeechlabError("a MUSHRA test needs --reference RUN:MODEL[:TEXT_SET] (the clips the others are heard "
                             "against: recordings, or the best system); the other kinds take none")
    systems, clips, predicted = [], {}, {}
    for i, ref in enumerate([*refs, reference] if reference else refs, 1):
        run_id, model, dataset = _system(store, ref)
        label = REFERENCE if reference and i == len(refs) + 1 else f"S{i}"
        systems.append({"label": label, "run": run_id, "model": model, "dataset": dataset,
                        **({"role": "reference"} if label == REFERENCE else {})})
        clips[label] = {str(r["utterance_id"]): r for r in store.utterances(run_id, model, dataset) if _audio(r)}
        predicted[label] = _dnsmos(store, run_id, model, dataset)
    common = sorted(set.intersection(*(set(c) for c in clips.values())))
    if not common:
        raise SpeechlabError("no text has a clip of every system on disk (synthesized clips live in pytest's "
                             "temporary folder, kept for the last three sessions: create the test after the runs)")
    if reference:
        systems.append({**systems[-1], "label": ANCHOR, "role": "anchor"})
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
        if reference:
            stored[ANCHOR] = str(_anchor(Path(stored[REFERENCE]), target).resolve())
        scores = {label: predicted[label][item] for label in clips if item in predicted[label]}
        items.append({"item": item, "text": clips["S1"][item].get("reference") or "", "clips": stored,
                      **({"dnsmos": scores} if scores else {})})
    spec = {"systems": systems, "items": items, "folder": str(target.resolve())}
    store.create_listening_test(name, kind, spec)
    return spec


def well_formed(test: dict) -> bool:
    """A stored test has the shape ``create_test`` writes (the database is read as untrusted)."""
    spec = test.get("spec")
    if test.get("kind") not in KINDS or not isinstance(spec, dict) or not isinstance(spec.get("folder"), str):
        return False
    systems, items = spec.get("systems"), spec.get("items")
    if not isinstance(systems, list) or not systems or not isinstance(items, list):
        return False
    labels = [s.get("label") for s in systems if isinstance(s, dict)]
    return (len(labels) == len(systems) and all(isinstance(x, str) for x in labels)
            and (test["kind"] != "ab" or len(labels) == 2)
            and (test["kind"] != "mushra" or {REFERENCE, ANCHOR} <= set(labels))
            and all(isinstance(i, dict) and isinstance(i.get("item"), str) and isinstance(i.get("clips"), dict)
                    and all(isinstance(i["clips"].get(x), str) for x in labels) for i in items))


def clip_opinions(store: Store | None, model: str) -> dict[str, list[float]]:
    """Every ACR rating (1-5) listeners gave clips of ``model``, in every listening test, by the clip's
    content digest (its copy's name): the same audio synthesized again is the same clip."""
    if store is None:
        return {}
    clips: dict[tuple[str, str, str], str] = {}  # (test, item, label) -> digest
    for test in store.listening_tests():
        if test["kind"] == "acr" and well_formed(test):
            labels = {s["label"] for s in test["spec"]["systems"] if s.get("model") == model}
            for i in test["spec"]["items"]:
                clips.update({(test["name"], i["item"], label): Path(i["clips"][label]).stem for label in labels})
    found: dict[str, list[float]] = {}
    for r in store.ratings():
        for label, v in (r["score"].items() if isinstance(r.get("score"), dict) else ()):
            digest = clips.get((r["test"], r["item"], label))
            if digest and isinstance(v, (int, float)) and not isinstance(v, bool):
                found.setdefault(digest, []).append(float(v))
    return found
