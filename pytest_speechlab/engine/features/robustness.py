"""Robustness: a model on a speech set clean and through each configured perturbation at its four
severities (every seed), WERD per severity, NWERD against the reference model. The perturbed sets
it evaluates only for itself are shown in its own table, not as evaluations of their own."""
from __future__ import annotations

import contextlib

from ..._perturb import chain_label, ladder, seeds_of
from ...robustness import Curve, RobustnessEval
from ..runner import ModelLoadError
from .base import Feature


class RobustnessFeature(Feature):
    name = "robustness"
    options = ((("--speechlab-robustness",), dict(
        action="store_true", default=False,
        help="run the robustness suite: each selected model on each speech dataset through every "
        "[tool.speechlab.robustness] perturbation at four severities (WER, WERD, NWERD per severity).")),)

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.evals: dict[tuple, RobustnessEval] = {}  # (model, speech set) -> RobustnessEval
        self.only: set[str] = set()  # perturbed sets only this feature evaluated
        self.enabled = engine.settings.robustness.enabled  # or --speechlab-robustness

    def configure(self, option) -> None:
        self.enabled = option.speechlab_robustness or self.engine.settings.robustness.enabled

    def evaluate(self, loaded, dataset) -> RobustnessEval:
        key = (loaded.name, dataset.name)
        if key not in self.evals:
            self.evals[key] = self._curves(loaded, dataset)
            reference = self.reference()
            if reference and reference != loaded.name:
                with contextlib.suppress(ModelLoadError):  # the reference's own tests report it
                    ref_key = (reference, dataset.name)
                    if ref_key not in self.evals:
                        engine = self.engine
                        self.evals[ref_key] = self._curves(engine.pool.get(engine.registry.model(reference)), dataset)
            theirs = {c.kind: c for c in self.evals.get((reference, dataset.name), RobustnessEval("", "", None, [])).curves}
            for curve in self.evals[key].curves:
                curve.normalize(theirs.get(curve.kind))
        return self.evals[key]

    def reference(self) -> str | None:
        """The model NWERD is normalized by: [tool.speechlab.robustness] reference, else the first
        selected ASR model."""
        return self.engine.settings.robustness.reference or next(iter(self.engine.selected_models("asr")), None)

    def _curves(self, loaded, dataset) -> RobustnessEval:
        engine = self.engine
        settings = engine.settings.robustness
        clean = engine.evaluate(loaded, dataset)
        curves = []
        for kind in settings.perturbations:
            points = []
            for chain in ladder(kind):
                results = []
                for seed in seeds_of(chain, settings.seeds):
                    perturbed = engine.perturbed(dataset, seed)
                    self.only.add(perturbed.name)
                    results.append(engine.evaluate(loaded, perturbed))
                points.append((chain_label(chain), results))
            curves.append(Curve.of(clean, kind, points))
        return RobustnessEval(loaded.name, dataset.name, clean, curves, settings.gate_severity)

    def idle(self) -> set[str]:
        return set() if self.enabled else {"speechlab_robustness"}

    def evaluations(self) -> list:
        return list(self.evals.values())

    def aside(self) -> set[str]:
        """The perturbed sets only this feature evaluated (not selected as speech sets)."""
        if not self.only:
            return set()
        return self.only - {self.engine.dataset(ref).name for ref in self.engine.selected_datasets()}

    def serialized(self) -> dict:
        engine, aside = self.engine, self.aside()
        return {"robustness_evaluations": [r.serialized() for (_, d), r in engine.results.items() if d in aside],
                "robustness": [{**curve.serialized(), "werd_limit": engine.thresholds(curve.model)["werd"],
                                "gate_severity": ev.gate_severity}
                               for ev in self.evals.values() for curve in ev.curves]}
