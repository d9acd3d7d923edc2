"""Features of an evaluation session beyond scoring one model on one speech set: each a class holding
its own state, evaluations and rules, built by the engine with the engine itself (``Feature(engine)``)
and kept in ``Engine.features`` by name. A feature reaches the engine only through what
``engine.pipeline.Engine`` documents as its core (settings, registry, pool, runner, ``evaluate``,
``run_items``, ``record``, ``progress``); the engine and the pytest plugin ask every feature the
same things:

- ``serialized()``: its sections of the session's serialized form (what every sink reads);
- ``aside()``: the speech-set names whose evaluations it shows in its own section instead of as
  evaluations of their own (the robustness suite's perturbed sets);
- ``cap(grade, model)``: the model's readiness grade as this feature limits it;
- ``idle()``: the plugin's fixtures whose tests have nothing to do this session (deselected);
- ``report_lines()``: its lines in the terminal summary.

The built-in ones are listed here; a plugin (or a conftest.py) adds one with the
``speechlab_register_features`` hook. ``docs/contributing.md`` walks through adding one.
"""
from __future__ import annotations

from .base import Feature
from .chat import ChatFeature
from .comparisons import BatchEquivalence, CrossRuntime
from .gate import Gate
from .robustness import RobustnessFeature
from .slices import SliceFeature
from .tts import TTSFeature

FEATURES: tuple[type[Feature], ...] = (TTSFeature, ChatFeature, Gate, RobustnessFeature, CrossRuntime, BatchEquivalence,
                                       SliceFeature)

__all__ = ["FEATURES", "Feature"]
