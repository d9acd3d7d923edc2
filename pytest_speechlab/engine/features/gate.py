"""The regression gate: this run's evaluations compared with a baseline run's, every selected ASR
model x speech set at once with the family-wise correction applied over all of them."""
from __future__ import annotations

from ..._text import redact
from ..._types import SpeechlabError
from ...compare import Side, compare, family_size, judge, stored_slices
from ...sinks.store import Store
from ..runner import ModelLoadError
from .base import Feature


class Gate(Feature):
    name = "gate"
    options = (
        (("--speechlab-baseline",), dict(
            metavar="NAME_OR_RUN", default=None,
            help="compare every model x dataset with this baseline run (a name from `speechlab baseline "
            "set`, a run id or 'latest'); the comparison shows in the summary.")),
        (("--speechlab-baseline-model",), dict(
            action="append", default=[], metavar="CANDIDATE=BASELINE",
            help="gate model CANDIDATE against model BASELINE of the baseline run (a decode change under a new "
            "name); repeatable; adds to [tool.speechlab.regression.baseline_models].")),
        (("--speechlab-fail-on-regression",), dict(
            action="store_true", default=False,
            help="with --speechlab-baseline: fail when WER/CER is significantly worse beyond the minimum "
            "effect, or RTF grew beyond its tolerance ([tool.speechlab.regression]).")),
    )

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.baseline: str | None = None  # a name, a run id or 'latest'
        self.fail_on_regression = False
        self.comparisons: dict[tuple[str, str], object] = {}  # (model, speech set) -> Comparison or a reason
        self._store = None
        self._run: str | None = None
        self._issues: list[str] | None = None
        self._judged = False
        # candidate model -> the baseline run's model it is compared with
        self.models: dict[str, str] = dict(engine.settings.baseline_models)

    def configure(self, option) -> None:
        self.baseline, self.fail_on_regression = option.speechlab_baseline, option.speechlab_fail_on_regression
        for pair in option.speechlab_baseline_model or ():
            candidate, sep, baseline = pair.partition("=")
            if not sep or not candidate.strip() or not baseline.strip():
                raise SpeechlabError(f"--speechlab-baseline-model {pair!r}: give CANDIDATE=BASELINE, two model names "
                                     "(e.g. faster-whisper/tiny-greedy=faster-whisper/tiny.en)")
            self.models[candidate.strip()] = baseline.strip()

    def baseline_model(self, model: str) -> str:
        """The baseline run's model that ``model`` is gated against: its own name unless mapped."""
        return self.models.get(model, model)

    def problems(self) -> list[str]:
        """Why the baseline cannot be compared with: no database, no such baseline, or a selected
        model x speech set it has no results for. Checked before any model is built."""
        engine, ref = self.engine, self.baseline
        if engine.db_url() is None:
            return [f"--speechlab-no-db: there is no results database to read baseline {ref!r} from "
                    "(drop --speechlab-no-db, or give --speechlab-db)"]
        try:
            store = self._store = Store(engine.db_url(), read_only=True)
            run_id = self._run = store.resolve(ref)
            have = store.evaluations(run_id)
        except SpeechlabError as exc:
            return [f"baseline {ref!r}: {exc}"]
        wanted = [(m, engine.dataset(d).name) for m in engine.selected_models("asr") for d in engine.selected_datasets()]
        missing = [(m, d) for m, d in wanted if (self.baseline_model(m), d) not in have]
        if not missing:
            return []
        named = ", ".join(f"{m} on {d}" + (f" (as {self.baseline_model(m)})" if self.baseline_model(m) != m else "")
                          for m, d in missing)
        fix = (f"Fix: record a run with those models and datasets and point the baseline at it (`speechlab baseline "
               f"set {ref} RUN`), or select what the baseline has")
        others = sorted({b for b, d in have if any(d == dm for _, dm in missing)})
        if others:  # a candidate under a new name (a decode change) is gated against a model the baseline has
            fix += (f", or gate a candidate against one of its models: --speechlab-baseline-model "
                    f"{missing[0][0]}={others[0]} ([tool.speechlab.regression.baseline_models])")
        return [f"baseline {ref!r} (run {run_id[:8]}) has no results for {named}; it has "
                f"{', '.join(f'{m} on {d}' for m, d in sorted(have)) or 'no results at all'}. {fix}"]

    def check(self) -> list[str]:
        """Before anything is evaluated: with fail_on_regression, a baseline that cannot be compared
        with is a SpeechlabError; otherwise the problems are returned (and kept as notices)."""
        if not self.baseline:
            if self.fail_on_regression:
                raise SpeechlabError("--speechlab-fail-on-regression needs --speechlab-baseline NAME "
                                     "(a name from `speechlab baseline set`, a run id or 'latest')")
            return []
        problems = self._issues = self.problems()
        if problems and self.fail_on_regression:
            raise SpeechlabError("the regression gate cannot compare, so it would pass without judging: "
                                 + "; ".join(problems))
        said = [redact(f"regression comparison: {problem}") for problem in problems]
        self.engine.notices += said
        return said

    def compare(self, result):
        """The comparison of ``result`` with the baseline run's same model x speech set, or a reason
        why none. The first call judges the whole gate: every selected model x speech set is
        evaluated and compared, and the family-wise correction is applied over all of them."""
        if not self._judged:
            self._judged = True
            self._judge()
        return self.comparisons.get((result.model, result.dataset),
                                    f"{result.model} on {result.dataset} is not part of the regression gate")

    def serialized(self) -> dict:
        """The gate's analyses (``Comparison.analysis``) and why a selected pair had none: the run
        file's ``gate`` section, which the Markdown, HTML and JUnit renderers read."""
        if not self.baseline or not self._judged:
            return {}
        analyses = [c.analysis() for c in self.comparisons.values() if not isinstance(c, str)]
        return {"gate": {"baseline": self.baseline, "baseline_run": self._run, "comparisons": analyses,
                         "problems": sorted({c for c in self.comparisons.values() if isinstance(c, str)})}}

    def idle(self) -> set[str]:
        return set() if self.baseline else {"speechlab_regression"}

    def _judge(self) -> None:
        engine, ref = self.engine, self.baseline
        problems = self._issues if self._issues is not None else self.problems()
        store, run_id = self._store, self._run
        pairs = []
        for model in engine.selected_models("asr"):
            try:
                loaded = engine.pool.get(engine.registry.model(model))
            except ModelLoadError:
                continue  # its own tests report the load failure
            for dataset_ref in engine.selected_datasets():
                result = engine.evaluate(loaded, engine.dataset(dataset_ref))
                key = (result.model, result.dataset)
                base = self.baseline_model(result.model)
                rows = store.utterances(run_id, base, result.dataset) if store is not None and run_id else []
                if not rows:
                    self.comparisons[key] = "; ".join(problems) or (
                        f"baseline {ref!r} (run {run_id[:8]}) has no results for {key[0]} on {key[1]}")
                    continue
                run = store.run(run_id)
                identity = next((m.get("info") for m in run["models"] if m["name"] == base), None)
                where = next((a.get("environment") for a in run.get("aggregates", ())
                              if (a.get("model"), a.get("dataset")) == (base, key[1])), None)
                candidate = Side.from_result("this run", result)
                slicer = engine.features.get("slices")
                if slicer is not None and slicer.fields:  # each slice gated too (and recorded with the run)
                    candidate.slices = stored_slices([f.summary() for f in slicer.of(result)])
                    candidate.slice_min = engine.settings.slices.min_size
                pairs.append((key, Side.from_rows(f"baseline {ref}, run {run_id[:8]}", base, key[1], rows,
                                                  run.get("cpu") or "", identity, where), candidate))
        policy = engine.settings.regression
        family = family_size([(base, this) for _, base, this in pairs], policy)
        judged = judge([compare(base, this, policy, family) for _, base, this in pairs], policy)
        for (key, _, _), comparison in zip(pairs, judged):
            self.comparisons[key] = comparison
            # the viewer links a gated evaluation to its comparison
            engine.recorder.annotate(*key, "gate", {"baseline": ref, "baseline_run": run_id,
                                                    "regressed": bool(comparison.regressions),
                                                    "headline": comparison.headline()})
