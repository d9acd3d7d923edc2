"""Perturbations: a dataset heard through noise, a room, a phone line, a codec, packet loss.

A perturbed dataset is an ordinary dataset whose name carries the chain, e.g.
``speechlab/speech+noise:snr=10`` or ``data/x.jsonl+telephone+noise:color=pink,snr=20``: the same
utterances (same ids, so paired comparisons with the clean set hold), their audio changed when the
runner reads it. Each step is ``kind[:param=value,...]``; parameters left out take their defaults,
and the canonical label (every parameter written, in order) is the dataset's identity and part of
every cache key. Randomness is seeded from the step's ``seed``, the step's position and the
utterance id, so a run repeats exactly and two utterances never share one noise.

audiomentations does the signal work where it has the transform (coloured noise, time stretch,
pitch shift, clipping, filters); the mixing at an SNR, the generated room response, the codec round
trips (through soundfile) and the packet loss are ours.
"""
from __future__ import annotations

import io
import random
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ._audio import RawAudio, read_audio, to_model_input
from ._builtin import fixtures_dir
from ._types import SpeechlabError

MAX_CHAIN = 8  # steps in one chain: more is a typo or an attack, not an experiment
# a change to what a step does makes new cache keys (2: fixture clips resampled at soxr HQ; 3: applied at
# the model's input rate, so that a severity means what the model hears)
VERSION = 3
ADDITIVE = ("noise", "babble", "ambient")  # kinds that add a background: the SNR the model hears is measured


@lru_cache(maxsize=1)
def perturbation_code() -> str:
    """What applies a chain, for the cache key: this module's version and audiomentations'."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"speechlab-perturb {VERSION}, audiomentations {version('audiomentations')}"
    except PackageNotFoundError:
        return f"speechlab-perturb {VERSION}, audiomentations absent"


@dataclass(frozen=True)
class Kind:
    apply: Callable  # (samples float32 mono, rate, numpy Generator, params) -> (samples, rate)
    defaults: dict  # parameter -> default (its type is the parameter's type)
    limits: dict  # parameter -> (low, high) for a number, or the allowed strings
    severities: tuple  # four parameter sets, mild to harsh: the robustness suite's ladder
    description: str
    library: bool = True  # needs audiomentations


def missing_library(chain: tuple[Perturbation, ...]) -> str | None:
    """Why ``chain`` cannot run here (audiomentations not installed), or None."""
    from importlib.util import find_spec

    needing = sorted({step.kind for step in chain if KINDS[step.kind].library})
    if needing and find_spec("audiomentations") is None:
        return (f"perturbation {', '.join(needing)} needs audiomentations: "
                "pip install 'pytest-speechlab[robustness]'")
    return None


@dataclass(frozen=True)
class Perturbation:
    """One step of a chain: a kind and every one of its parameters (defaults filled in)."""

    kind: str
    params: tuple  # ((name, value), ...) in the kind's order

    @property
    def label(self) -> str:
        return f"{self.kind}:" + ",".join(f"{k}={_show(v)}" for k, v in self.params) if self.params else self.kind


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def chain_label(chain: tuple[Perturbation, ...]) -> str:
    return "+".join(step.label for step in chain)


def parse_step(text: str, named: dict | None = None) -> tuple[Perturbation, ...]:
    """``kind[:p=v,...]`` as the steps it stands for (a name from ``[tool.speechlab.perturbations]``
    stands for its whole chain). Raises SpeechlabError naming the problem and what is allowed."""
    kind, _, rest = text.strip().partition(":")
    if named and kind in named and not rest:
        return parse_chain(named[kind])
    if kind not in KINDS:
        extra = f"; named in [tool.speechlab.perturbations]: {', '.join(sorted(named))}" if named else ""
        raise SpeechlabError(f"perturbation {text!r}: unknown kind {kind!r} (kinds: {', '.join(KINDS)}{extra})")
    spec = KINDS[kind]
    given = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        name, eq, raw = item.partition("=")
        if not eq or name not in spec.defaults:
            raise SpeechlabError(f"perturbation {text!r}: {item!r} is not a parameter of {kind} "
                                 f"(parameters: {', '.join(f'{k}={_show(v)}' for k, v in spec.defaults.items()) or 'none'})")
        given[name] = _checked(text, name, raw, spec)
    return (Perturbation(kind, tuple((k, given.get(k, v)) for k, v in spec.defaults.items())),)


def _checked(text: str, name: str, raw: str, spec: Kind):
    default, limit = spec.defaults[name], spec.limits[name]
    if isinstance(default, str):
        if raw not in limit:
            raise SpeechlabError(f"perturbation {text!r}: {name} must be one of {', '.join(limit)}, not {raw!r}")
        return raw
    try:
        value = float(raw) if isinstance(default, float) else int(raw)
    except ValueError:
        raise SpeechlabError(f"perturbation {text!r}: {name} must be a number, not {raw!r}") from None
    low, high = limit
    if not low <= value <= high:
        raise SpeechlabError(f"perturbation {text!r}: {name}={raw} is outside {_show(low)}..{_show(high)}")
    return value


def parse_chain(text: str, named: dict | None = None) -> tuple[Perturbation, ...]:
    """``step+step+...`` as a tuple of Perturbations."""
    steps = tuple(p for part in str(text).split("+") if part.strip() for p in parse_step(part, named))
    if not steps:
        raise SpeechlabError(f"perturbation {text!r}: no steps")
    if len(steps) > MAX_CHAIN:
        raise SpeechlabError(f"perturbation {text!r}: {len(steps)} steps (at most {MAX_CHAIN})")
    return steps


def ladder(kind: str) -> list[tuple[Perturbation, ...]]:
    """The kind's four severities, mild to harsh, each as a one-step chain."""
    spec = KINDS[kind]
    return [(Perturbation(kind, tuple((k, {**spec.defaults, **sev}[k]) for k in spec.defaults)),)
            for sev in spec.severities]


def seeds_of(chain: tuple[Perturbation, ...], seeds: int) -> list[tuple[Perturbation, ...]]:
    """``chain`` with seed 0, 1, ... ``seeds - 1`` (only one when no step draws at random)."""
    if not any("seed" in dict(step.params) for step in chain):
        return [chain]
    return [tuple(Perturbation(step.kind, tuple((k, s if k == "seed" else v) for k, v in step.params))
                  for step in chain) for s in range(seeds)]


# -- applying ------------------------------------------------------------------------------------

# audiomentations draws from the global `random` and `numpy.random`; a step seeds both and puts
# them back, under a lock, so that threads of one run neither race nor disturb anyone else's draws.
_GLOBAL_RNG = threading.Lock()


def _seeded(seed: int, call):
    import numpy as np

    with _GLOBAL_RNG:
        saved = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            return call()
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])


def step_seed(step: Perturbation, position: int, utterance_id: str) -> int:
    seed = dict(step.params).get("seed", 0)
    return zlib.crc32(f"{seed}|{position}|{step.kind}|{utterance_id}".encode()) ^ (int(seed) << 32)


def apply_chain(raw: RawAudio, chain: tuple[Perturbation, ...], utterance_id: str) -> RawAudio:
    """The audio heard through ``chain`` (mono float32; the rate may change: a phone line is 8 kHz)."""
    import numpy as np

    samples = raw.samples if raw.samples.ndim == 1 else raw.samples.mean(axis=1)
    samples, rate = np.ascontiguousarray(samples, dtype=np.float32), raw.sample_rate
    for position, step in enumerate(chain):
        seed = step_seed(step, position, utterance_id)
        rng = np.random.default_rng(seed)
        samples, rate = _seeded(seed, lambda: KINDS[step.kind].apply(samples, rate, rng, dict(step.params)))
        samples = np.nan_to_num(np.asarray(samples, dtype=np.float32))
    return RawAudio(np.clip(samples, -1.0, 1.0), rate)


def heard(raw: RawAudio, chain: tuple[Perturbation, ...], utterance_id: str,
          rate: int) -> tuple[RawAudio, float | None]:
    """The audio a model of input ``rate`` hears through ``chain``: resampled to ``rate`` first, so
    that a severity is defined where the model listens ("snr=10" white noise is 10 dB across the
    model's band, not across a 48 kHz file's, 4.8 dB of which the model never hears). With the
    SNR measured on what comes out (clean power over the power of what the chain added), for a
    chain of background kinds only (``ADDITIVE``); None otherwise (a room or a codec changes the
    speech itself: there is no added noise to measure)."""
    import numpy as np

    clean = RawAudio(to_model_input(raw, rate), rate)
    out = apply_chain(clean, chain, utterance_id)
    snr = None
    if chain and all(step.kind in ADDITIVE for step in chain) and out.sample_rate == rate \
            and len(out.samples) == len(clean.samples):
        added = out.samples.astype(np.float64) - clean.samples
        signal, noise = float(np.sum(np.square(clean.samples, dtype=np.float64))), float(np.sum(added * added))
        if signal > 0 and noise > 0:
            snr = round(10 * float(np.log10(signal / noise)), 2)
    return out, snr


def _rms(x) -> float:
    import numpy as np

    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def mix_at_snr(samples, noise, snr_db: float):
    """``samples`` plus ``noise`` scaled to ``snr_db`` below the signal's RMS (whole-clip RMS, as
    audiomentations does); silence stays silence plus nothing."""
    signal, level = _rms(samples), _rms(noise)
    if signal == 0 or level == 0:
        return samples
    return samples + noise * (signal / level / 10 ** (snr_db / 20))


def _color_noise(samples, rate, rng, p):
    from audiomentations import AddColorNoise

    decay = {"white": 0.0, "pink": -3.01, "brown": -6.02}[p["color"]]
    return AddColorNoise(min_snr_db=p["snr"], max_snr_db=p["snr"], min_f_decay=decay, max_f_decay=decay,
                         p=1.0)(samples, sample_rate=rate), rate


_CLIPS: dict = {}


def _clips(folder: str, rate: int) -> list:
    """The built-in fixture clips of ``folder`` at ``rate``, the ones with sound in them: (name, samples)."""
    key = (folder, rate)
    if key not in _CLIPS:
        clips = [(path.stem, to_model_input(read_audio(str(path)), rate))
                 for path in sorted((fixtures_dir() / folder).glob("*.flac"))]
        _CLIPS[key] = [(name, x) for name, x in clips if _rms(x) > 1e-3]  # not silence or -60 dBFS hiss
    return _CLIPS[key]


def _loop(noise, n: int, rng):
    import numpy as np

    start = int(rng.integers(0, len(noise)))
    return np.resize(np.roll(noise, -start), n)


def _babble(samples, rate, rng, p):
    """Several talkers from the speech fixtures at once, each from a random point."""
    import numpy as np

    clips = [x for _, x in _clips("speech", rate)]
    picks = rng.choice(len(clips), size=min(p["talkers"], len(clips)), replace=False)
    noise = np.zeros(len(samples), dtype=np.float64)
    for i in picks:
        talker = clips[i] / (_rms(clips[i]) or 1.0)
        noise += _loop(np.concatenate([talker, np.zeros(rate // 4, dtype=np.float32)]), len(samples), rng)
    return mix_at_snr(samples, noise, p["snr"]), rate


def _ambient(samples, rate, rng, p):
    """One of the generated non-speech clips (music, hum, clicks, babble, noises) as the background."""
    clips = _clips("nonspeech", rate)
    if p["clip"] != "any":
        clips = [c for c in clips if c[0] == p["clip"]] or clips
    _, noise = clips[int(rng.integers(0, len(clips)))]
    return mix_at_snr(samples, _loop(noise, len(samples), rng), p["snr"]), rate


def room_impulse_response(rt60: float, rate: int, rng):
    """A generated room response: the direct sound, then exponentially decaying noise (60 dB down
    after ``rt60`` s), a few early reflections; normalized to unit energy."""
    import numpy as np

    n = max(int(rt60 * rate), 16)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60) * 0.3
    ir = tail
    ir[0] = 1.0
    for delay, gain in zip(rng.uniform(0.003, 0.03, 4), (0.6, 0.5, 0.4, 0.3)):
        ir[int(delay * rate)] += gain * rng.choice((-1, 1))
    return ir / np.sqrt(np.sum(ir ** 2))


def _reverb(samples, rate, rng, p):
    from scipy.signal import fftconvolve

    wet = fftconvolve(samples, room_impulse_response(p["rt60"], rate, rng))[: len(samples)]
    return wet * (_rms(samples) / (_rms(wet) or 1.0)), rate  # as loud as it was


def _tempo(samples, rate, rng, p):
    from audiomentations import TimeStretch

    return TimeStretch(min_rate=p["factor"], max_rate=p["factor"], leave_length_unchanged=False,
                       p=1.0)(samples, sample_rate=rate), rate


def _pitch(samples, rate, rng, p):
    from audiomentations import PitchShift

    return PitchShift(min_semitones=p["semitones"], max_semitones=p["semitones"], p=1.0)(samples, sample_rate=rate), rate


def _gain(samples, rate, rng, p):
    from audiomentations import Gain

    return Gain(min_gain_db=p["db"], max_gain_db=p["db"], p=1.0)(samples, sample_rate=rate), rate


def _clip(samples, rate, rng, p):
    from audiomentations import ClippingDistortion

    pct = int(p["percent"])
    return ClippingDistortion(min_percentile_threshold=pct, max_percentile_threshold=pct, p=1.0)(
        samples, sample_rate=rate), rate


def _telephone(samples, rate, rng, p):
    """A phone line: 300 Hz high-pass, down to ``rate`` (which band-limits it), mu-law 8-bit."""
    import soxr
    from audiomentations import HighPassFilter

    target = p["rate"]
    x = HighPassFilter(min_cutoff_freq=300.0, max_cutoff_freq=300.0, p=1.0)(samples, sample_rate=rate)
    x = soxr.resample(x, rate, target, quality="HQ") if rate != target else x
    if p["mulaw"] == "yes":
        x = _round_trip(x, target, format="WAV", subtype="ULAW")
    return x, target


def _round_trip(samples, rate: int, **how):
    """Encoded with soundfile (libsndfile) and decoded again: what the codec keeps."""
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1, 1), rate, **how)
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    return out[: len(samples)] if len(out) >= len(samples) else np.pad(out, (0, len(samples) - len(out)))


def _codec(fmt: str, subtype: str):
    """A round trip through a lossy codec at 16 kHz (so that a level means one bitrate; measured on
    noise: MP3 0.75/0.9/0.95/0.99 = 50/25/16/8 kbps, Opus 72/30/17/8 kbps)."""
    def apply(samples, rate, rng, p):
        import soxr

        x = soxr.resample(samples, rate, CODEC_RATE) if rate != CODEC_RATE else samples
        return _round_trip(x, CODEC_RATE, format=fmt, subtype=subtype, compression_level=p["level"],
                           **({"bitrate_mode": "CONSTANT"} if fmt == "MP3" else {})), CODEC_RATE
    return apply


CODEC_RATE = 16000


def _dropout(samples, rate, rng, p):
    """Packet loss: each ``packet_ms`` packet lost with probability ``rate`` (filled with silence,
    as a jitter buffer without concealment does)."""
    size = max(int(p["packet_ms"] * rate / 1000), 1)
    out = samples.copy()
    for start in range(0, len(out), size):
        if rng.random() < p["rate"]:
            out[start:start + size] = 0.0
    return out, rate


def _pad(samples, rate, rng, p):
    """Silence (or quiet noise at ``dbfs``) added before and after."""
    import numpy as np

    def quiet(seconds):
        n = int(seconds * rate)
        return (rng.standard_normal(n) * 10 ** (p["dbfs"] / 20)).astype(np.float32) if p["dbfs"] > -120 else np.zeros(n, np.float32)
    return np.concatenate([quiet(p["start"]), samples, quiet(p["end"])]), rate


_SNR = (-20.0, 100.0)
_SNR_LADDER = ({"snr": 30.0}, {"snr": 20.0}, {"snr": 10.0}, {"snr": 0.0})
_LEVEL_LADDER = ({"level": 0.75}, {"level": 0.9}, {"level": 0.95}, {"level": 0.99})
KINDS: dict[str, Kind] = {
    "noise": Kind(_color_noise, {"snr": 20.0, "color": "white", "seed": 0},
                  {"snr": _SNR, "color": ("white", "pink", "brown"), "seed": (0, 2**31)}, _SNR_LADDER,
                  "coloured noise (white, pink, brown) at an SNR in dB"),
    "babble": Kind(_babble, {"snr": 10.0, "talkers": 5, "seed": 0},
                   {"snr": _SNR, "talkers": (1, 20), "seed": (0, 2**31)}, _SNR_LADDER,
                   "several talkers from the speech fixtures at once, at an SNR", library=False),
    "ambient": Kind(_ambient, {"snr": 10.0, "clip": "any", "seed": 0},
                    {"snr": _SNR, "clip": ("any", "music_chords", "hum_60hz", "clicks", "babble", "tone_melody",
                                           "brown_noise_-30dBFS", "pink_noise_-35dBFS", "noise_vocoded",
                                           "reversed_speech", "white_noise_-40dBFS"), "seed": (0, 2**31)},
                    _SNR_LADDER, "one of the generated non-speech clips (music, hum, clicks...) as background, at an SNR",
                    library=False),
    "reverb": Kind(_reverb, {"rt60": 0.6, "seed": 0}, {"rt60": (0.05, 5.0), "seed": (0, 2**31)},
                   ({"rt60": 0.3}, {"rt60": 0.6}, {"rt60": 1.0}, {"rt60": 1.5}),
                   "a generated room response with a reverberation time rt60 in s", library=False),
    "speed": Kind(_tempo, {"factor": 1.25}, {"factor": (0.25, 4.0)},
                  ({"factor": 1.25}, {"factor": 1.5}, {"factor": 1.75}, {"factor": 2.0}),
                  "faster (or slower) speech at the same pitch: tempo x factor"),
    "pitch": Kind(_pitch, {"semitones": 4.0}, {"semitones": (-24.0, 24.0)},
                  ({"semitones": 2.0}, {"semitones": 4.0}, {"semitones": 6.0}, {"semitones": 8.0}),
                  "the voice shifted by semitones at the same tempo"),
    "gain": Kind(_gain, {"db": -20.0}, {"db": (-80.0, 40.0)},
                 ({"db": -20.0}, {"db": -30.0}, {"db": -40.0}, {"db": -50.0}),
                 "louder or quieter by db (clipped at full scale)"),
    "clip": Kind(_clip, {"percent": 20.0}, {"percent": (0.0, 80.0)},
                 ({"percent": 10.0}, {"percent": 30.0}, {"percent": 50.0}, {"percent": 70.0}),
                 "clipping distortion: the loudest percent of samples clipped"),
    "telephone": Kind(_telephone, {"rate": 8000, "mulaw": "yes"}, {"rate": (2000, 48000), "mulaw": ("yes", "no")},
                      ({"rate": 16000}, {"rate": 11025}, {"rate": 8000}, {"rate": 6000}),
                      "a phone line: 300 Hz high-pass, resampled to rate (8000: narrowband), mu-law"),
    "mp3": Kind(_codec("MP3", "MPEG_LAYER_III"), {"level": 0.9}, {"level": (0.0, 0.99)}, _LEVEL_LADDER,
                "an MP3 round trip at 16 kHz, libsndfile's compression level 0-0.99 (0.9: 25 kbps, 0.99: 8 kbps)",
                library=False),
    "opus": Kind(_codec("OGG", "OPUS"), {"level": 0.9}, {"level": (0.0, 1.0)}, _LEVEL_LADDER,
                 "an Opus round trip at 16 kHz, compression level 0-1 (0.9: 30 kbps, 0.99: 8 kbps)", library=False),
    "dropout": Kind(_dropout, {"rate": 0.1, "packet_ms": 20.0, "seed": 0},
                    {"rate": (0.0, 1.0), "packet_ms": (1.0, 1000.0), "seed": (0, 2**31)},
                    ({"rate": 0.05}, {"rate": 0.1}, {"rate": 0.2}, {"rate": 0.3}),
                    "packet loss: each packet_ms packet lost with probability rate", library=False),
    "pad": Kind(_pad, {"start": 0.5, "end": 0.5, "dbfs": -120.0, "seed": 0},
                {"start": (0.0, 60.0), "end": (0.0, 60.0), "dbfs": (-120.0, 0.0), "seed": (0, 2**31)},
                ({"start": 0.5, "end": 0.5}, {"start": 1.0, "end": 1.0}, {"start": 2.0, "end": 2.0}, {"start": 4.0, "end": 4.0}),
                "silence (dbfs -120) or quiet noise added before (start s) and after (end s)", library=False),
}


def describe() -> list[tuple[str, str, str]]:
    """(kind, parameters with defaults, description) for the docs and ``speechlab list``."""
    return [(k, ",".join(f"{p}={_show(v)}" for p, v in spec.defaults.items()), spec.description)
            for k, spec in KINDS.items()]


def split_dataset_ref(ref: str, known: Callable[[str], bool]) -> tuple[str, str]:
    """``base+chain`` -> (base, chain): the longest prefix that ``known`` recognizes (a registered
    dataset or an existing path; a path may itself hold '+'), the rest the chain ('' for none)."""
    if known(ref):
        return ref, ""
    cut = len(ref)
    while (cut := ref.rfind("+", 0, cut)) > 0:
        if known(ref[:cut]):
            return ref[:cut], ref[cut + 1:]
    return ref, ""
