"""Metamorphic properties of a model, tested with hypothesis: what a harmless change to the audio
may do to the transcript.

A property says "through any perturbation from this strategy, the transcript of each clip changes
by at most k words" (words counted after the dataset's normalizer, as S+D+I against the model's own
clean transcript). hypothesis draws perturbations, and when one breaks the property it shrinks it to
the smallest that still does (strategies shrink towards no change at all: 0 s of padding, 0 dB),
so the failure names the minimal example; its audio is written and shown in the HTML evidence
(the checking itself is ``metamorphic.MetamorphicCheck``, the ``speechlab_metamorphic`` fixture).

In a suite::

    from hypothesis import given
    from pytest_speechlab.properties import padding, property_settings

    @property_settings()
    @given(chain=padding(max_seconds=1.0))
    def test_silence_at_the_ends(speechlab_metamorphic, chain):
        speechlab_metamorphic.check(chain, max_words=1, what="up to 1 s of silence at either end")

``property_settings`` bounds the examples ($SPEECHLAB_PROPERTY_EXAMPLES, default 10) and turns off
the deadline.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ._perturb import KINDS, Perturbation
from ._types import SpeechlabError
from .metamorphic import MetamorphicCheck

__all__ = ["MILD_TO_HARSH", "MetamorphicCheck", "chains", "gain", "padding", "property_settings", "steps"]

# Per kind, each drawn parameter from its mildest (no change, where there is one) to its harshest.
# Values are drawn as integers on a fine grid (hundredths of the way, centiseconds, tenths of a
# dB): hypothesis shrinks an integer towards 0, so a failure shrinks to the mildest value that
# still fails (floats shrink towards "simple" numbers such as 1.0 instead).
MILD_TO_HARSH = {
    "noise": {"snr": (60.0, 0.0)}, "babble": {"snr": (60.0, 0.0)}, "ambient": {"snr": (60.0, 0.0)},
    "reverb": {"rt60": (0.05, 1.5)}, "speed": {"factor": (1.0, 2.0)}, "pitch": {"semitones": (0.0, 8.0)},
    "gain": {"db": (0.0, -40.0)}, "clip": {"percent": (0.0, 70.0)}, "telephone": {"rate": (16000, 6000)},
    "mp3": {"level": (0.0, 0.99)}, "opus": {"level": (0.0, 0.99)}, "dropout": {"rate": (0.0, 0.3)},
    "pad": {"start": (0.0, 4.0), "end": (0.0, 4.0)},
}


def _step(kind: str, fractions: list[float]) -> Perturbation:
    spec = KINDS[kind]
    drawn = {}
    for (name, (mild, harsh)), x in zip(MILD_TO_HARSH[kind].items(), fractions):
        value = mild + x * (harsh - mild)
        drawn[name] = int(round(value)) if isinstance(spec.defaults[name], int) else round(value, 2)
    return Perturbation(kind, tuple((k, drawn.get(k, v)) for k, v in spec.defaults.items()))


def steps(kind: str, harshest: float = 1.0) -> st.SearchStrategy:
    """One step of ``kind``, each parameter drawn between its mildest and ``harshest`` (0-1) of the
    way to its harshest."""
    fraction = st.integers(0, int(100 * harshest)).map(lambda n: n / 100)
    return st.lists(fraction, min_size=len(MILD_TO_HARSH[kind]), max_size=len(MILD_TO_HARSH[kind])).map(
        lambda xs: _step(kind, xs))


def chains(kinds: tuple[str, ...] = tuple(MILD_TO_HARSH), max_steps: int = 3, harshest: float = 1.0) -> st.SearchStrategy:
    """Chains of 1 to ``max_steps`` steps of the given kinds (shrinking to fewer, milder steps)."""
    return st.lists(st.sampled_from(kinds).flatmap(lambda k: steps(k, harshest)), min_size=1, max_size=max_steps).map(tuple)


def padding(max_seconds: float = 1.0) -> st.SearchStrategy:
    """Silence of 0 to ``max_seconds`` before and after."""
    seconds = st.integers(0, int(round(max_seconds * 100))).map(lambda n: n / 100)
    return st.tuples(seconds, seconds).map(lambda se: (Perturbation("pad", (("start", se[0]), ("end", se[1]),
                                                                            ("dbfs", -120.0), ("seed", 0))),))


def gain(max_db: float = 6.0) -> st.SearchStrategy:
    """A gain change of -``max_db`` to +``max_db`` dB."""
    tenths = int(round(max_db * 10))
    return st.integers(-tenths, tenths).map(lambda n: (Perturbation("gain", (("db", n / 10),)),))


def property_settings(examples: int | None = None, **overrides):
    """hypothesis settings for a property over a model: ``examples`` drawn (default:
    $SPEECHLAB_PROPERTY_EXAMPLES, else 10; every example runs the model on each clip), no
    deadline (a model call is slow by hypothesis' standards), no too-slow health check."""
    if examples is None:
        raw = os.environ.get("SPEECHLAB_PROPERTY_EXAMPLES", "10")
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            raise SpeechlabError(f"$SPEECHLAB_PROPERTY_EXAMPLES must be a whole number 1-10000, not {raw!r}")
        examples = int(raw)
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow], **overrides)
