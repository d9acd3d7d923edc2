"""TTS evaluation: text set -> synthesized audio -> audio sanity, determinism, and intelligibility.

Intelligibility is the round-trip word error rate: an ASR judge model (configurable, its identity
recorded) transcribes each synthesized clip and the transcript is scored against the input text with
the same normalizer and alignment as ASR. The result is an ordinary EvalResult whose timing is the
synthesis (RTF = synthesis seconds / synthesized audio seconds), so the summary, grades, reports and
results database treat a TTS model like any other.
"""
from __future__ import annotations

import base64
import hashlib
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._dataset import display_path, json_lines
from .._tables import checked
from .._text import terminal
from .._types import Audio, InputError, SpeechlabError
from .base import Task


@dataclass(frozen=True)
class TextItem:
    id: str
    text: str
    category: str = ""
    source: str = ""


@dataclass
class TextSet:
    name: str
    items: list[TextItem]
    errors: list[InputError] = field(default_factory=list)


def load_texts(path: str | Path, name: str | None = None) -> TextSet:
    """A JSONL file of ``{"id": ..., "text": ..., "category": ...}``; bad lines are reported, not fatal."""
    path = Path(path)
    if not path.is_file():
        raise SpeechlabError(f"TTS text set {display_path(path)} not found")
    texts = TextSet(name or display_path(path), [])
    seen = set()
    for where, entry in json_lines(path, texts.errors):
        text = entry.get("text") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text.strip():
            texts.errors.append(InputError(where, "missing or empty text"))
            continue
        item_id = str(entry.get("id") or f"line{where.rsplit(' ', 1)[-1]}")
        if item_id in seen:
            texts.errors.append(InputError(where, f"duplicate id {item_id!r}"))
            continue
        seen.add(item_id)
        texts.items.append(TextItem(item_id, text, str(entry.get("category", "")), where))
    return texts


@dataclass(frozen=True)
class SanityConfig:
    clip_level: float = 0.999  # |sample| at or above this is clipped
    max_clipped_share: float = 0.001
    silence_dbfs: float = -50.0  # 10 ms frames below this RMS are silent
    max_edge_silence_s: float = 1.0  # leading or trailing
    min_words_per_second: float = 0.8
    max_words_per_second: float = 6.0

    @classmethod
    def from_table(cls, table: dict, where: str) -> SanityConfig:
        return cls(**checked(cls, table, where))


def audio_problems(audio, text: str, config: SanityConfig = SanityConfig()) -> list[str]:
    """What is wrong with one synthesized clip, each problem with its numbers; [] when sane."""
    import numpy as np

    samples = audio.samples
    if len(samples) == 0:
        return ["empty audio"]
    problems = []
    finite = np.isfinite(samples)
    if not finite.all():
        problems.append(f"{int((~finite).sum())} NaN/inf samples")
        samples = np.where(finite, samples, 0.0)
    clipped = float(np.mean(np.abs(samples) >= config.clip_level))
    if clipped > config.max_clipped_share:
        problems.append(f"clipping: {clipped:.2%} of samples at full scale")
    frame = max(1, audio.sample_rate // 100)
    n = len(samples) // frame
    if n:
        rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
        loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-10)) > config.silence_dbfs)
        if loud.size == 0:
            problems.append("silent: no frame above " f"{config.silence_dbfs:.0f} dBFS")
        else:
            lead, trail = loud[0] / 100, (n - 1 - loud[-1]) / 100
            for where, seconds in (("leading", lead), ("trailing", trail)):
                if seconds > config.max_edge_silence_s:
                    problems.append(f"{where} silence {seconds:.2f} s > {config.max_edge_silence_s} s")
    words = len(text.split())
    rate = words / audio.seconds
    if words >= 3 and not config.min_words_per_second <= rate <= config.max_words_per_second:
        problems.append(f"implausible duration: {words} words in {audio.seconds:.2f} s = {rate:.1f} words/s "
                        f"(expected {config.min_words_per_second}-{config.max_words_per_second})")
    return problems


@dataclass
class TTSEval:
    """A TTS model on a text set: the round-trip EvalResult plus what is TTS-specific."""

    result: Any  # EvalResult: WER/CER through the judge, RTF of synthesis
    judge: str
    claims_deterministic: bool
    problems: dict[str, list[str]] = field(default_factory=dict)  # item id -> audio problems
    nondeterministic: list[str] = field(default_factory=list)  # ids whose second synthesis differed
    errors: list[InputError] = field(default_factory=list)
    folder: str = ""  # where the synthesized audio was written
    quality: Any = None  # QualityResult (DNSMOS, speaker similarity), None when not measured
    synthesized_by: dict[str, int] = field(default_factory=dict)  # worker ("" this process) -> texts
    listeners: dict | None = None  # listeners' ratings of these clips beside their DNSMOS (None: no rating)

    @property
    def model(self) -> str:
        return self.result.model

    @property
    def texts(self) -> str:
        return self.result.dataset

    def serialized(self) -> dict:
        """What is TTS-specific; the round-trip evaluation is serialized with the others (it is one
        of the session's results)."""
        return {"model": self.model, "texts": self.texts, "judge": self.judge, "folder": self.folder,
                "claims_deterministic": self.claims_deterministic, "problems": dict(self.problems),
                "nondeterministic": list(self.nondeterministic), "synthesized_by": dict(self.synthesized_by),
                "quality": self.quality.summary() if self.quality is not None else None, "listeners": self.listeners}

    def report(self) -> list[str]:
        return report_lines(self.serialized())


def report_lines(record: dict) -> list[str]:
    """A TTS evaluation's own lines (from its ``serialized()`` form), for the terminal and for
    assertion messages."""
    problems, differing = record["problems"], record["nondeterministic"]
    lines = [f"tts: {record['model']} on {record['texts']}: intelligibility judged by {record['judge']}; "
             + (f"synthesized audio in {record['folder']}; " if record["folder"] else "") +
             f"determinism {'claimed, ' if record['claims_deterministic'] else 'not claimed, '}"
             f"{len(differing)} item(s) differed on a second synthesis; audio problems on {len(problems)} item(s)"]
    lines += [f"  {item}: {'; '.join(found)}" for item, found in problems.items()]
    if differing:
        lines.append("  non-deterministic: " + ", ".join(differing))
    lines += quality_lines(record.get("quality")) + listener_lines(record.get("listeners"))
    return [terminal(line, one_line=True) for line in lines]


def listener_lines(listeners: dict | None) -> list[str]:
    """'  listeners (ACR, ...): MOS 3.80 [95% CI ...] over 40 ratings of 10 distinct clips; this run's
    clip of 8 text(s) among them: listeners ..., DNSMOS OVRL ... on the same 8 clips, Pearson r ...'."""
    if not listeners:
        return []
    m = listeners["mos"]
    ci = f" [95% CI {m['ci'][0]:.2f}-{m['ci'][1]:.2f}]" if m["ci"] else ""
    line = (f"  listeners (ACR, speechlab view --listening): MOS {m['mos']:.2f}{ci} over {m['n']} ratings of "
            f"{listeners['clips']} distinct clips; this run's clip of {listeners['same_clips']} text(s) among them")
    beside = listeners.get("beside")
    if beside:
        r, rci = beside["pearson"], beside["ci"]
        line += (f": listeners {beside['listeners']:.2f}, DNSMOS OVRL {beside['dnsmos']:.2f} on the same {beside['clips']} "
                 "clips, Pearson r " + (f"{r:.2f}" + (f" [{rci[0]:.2f}, {rci[1]:.2f}]" if rci else "") if r is not None
                                        else "not computable (fewer than 3 clips, or one side constant)"))
    return [line]


def quality_lines(quality: dict | None) -> list[str]:
    """'  perceptual quality: DNSMOS OVRL 3.21 [3.10-3.30] ...' (or why it was not measured)."""
    if not quality:
        return []
    if quality.get("problem"):
        return [f"  perceptual quality {quality['problem']}"]
    labels = {"ovrl": "DNSMOS OVRL", "sig": "SIG", "bak": "BAK", "p808": "P.808 MOS",
              "speaker_similarity": "speaker similarity"}
    parts = []
    for name, label in labels.items():
        figure = quality["figures"][name]
        if figure["mean"] is not None:
            ci = figure["ci"]
            parts.append(f"{label} {figure['mean']:.2f}" + (f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci else ""))
    lines = [f"  perceptual quality over {quality['figures']['ovrl']['n']} clips: " + ", ".join(parts)
             + f" (speaker similarity to {quality['reference']})"]
    if quality["silent"]:
        lines.append(f"  not scored (silent): {', '.join(quality['silent'])}")
    lines += [f"  not scored ({item}): {why}" for item, why in quality.get("failed", {}).items()]
    return lines


def audio_file_name(index: int, item_id: str) -> str:
    """A file name for a synthesized item that is always inside its folder and unique: its position,
    a readable part of the id (letters, digits, '.', '-', '_'), and a digest of the whole id, so
    that '../x', '/etc/x', 'x' and 'sub/../x' give different plain names."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", item_id).strip("_")[:40] or "item"
    digest = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{index:04d}-{readable}-{digest}.wav"


def write_wav(folder: Path, name: str, audio) -> Path:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.resolve().parent != folder.resolve():  # audio_file_name never does this; refuse anyway
        raise SpeechlabError(f"refusing to write synthesized audio outside {folder}: {name!r}")
    # 24-bit PCM, not float: libsndfile stamps float WAV files with the time of writing (a PEAK
    # chunk), so the same audio would never have the same content digest (the inference cache's key)
    sf.write(path, np.clip(audio.samples, -1.0, 1.0), audio.sample_rate, subtype="PCM_24")
    return path


def as_audio(value: Any) -> Audio:
    import numpy as np

    if isinstance(value, tuple) and len(value) == 2:
        value = Audio(*value)
    if not isinstance(value, Audio):
        raise TypeError(f"synthesize() must return an Audio or (samples, sample_rate), got {type(value).__name__}")
    samples = np.asarray(value.samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    return Audio(samples, int(value.sample_rate))


def _synthesize(instance: Any, text: str) -> tuple[Audio, None]:
    return as_audio(instance.synthesize(text)), None


def _again(instance: Any) -> int:
    """A model that claims to be deterministic synthesizes each text twice (the second untimed)."""
    return 1 if bool(getattr(instance, "deterministic", False)) else 0


def encode_audio(audio: Audio) -> dict:
    """Synthesized audio as the inference cache keeps it: the float32 samples exactly (zlib, base64)."""
    import numpy as np

    data = np.ascontiguousarray(audio.samples, dtype="<f4").tobytes()
    return {"sample_rate": audio.sample_rate, "float32_zlib": base64.b64encode(zlib.compress(data, 6)).decode("ascii")}


def decode_audio(record: dict) -> Audio:
    import numpy as np

    if not isinstance(record, dict) or not isinstance(record.get("sample_rate"), int) \
            or not isinstance(record.get("float32_zlib"), str):
        raise ValueError("not a cached synthesis")
    data = zlib.decompress(base64.b64decode(record["float32_zlib"]))
    return Audio(np.frombuffer(data, dtype="<f4").astype(np.float32), record["sample_rate"])


TTS = Task("tts", ("synthesize",), "TTSModel: synthesize(text) -> Audio", _synthesize,
           load=load_texts, score=audio_problems, summarize=TTSEval, request=lambda item: item.text,
           again=_again, encode=encode_audio, decode=decode_audio, item_kind="text", set_kind="TTS text set")
