"""Error rates by slice ([tool.speechlab.slices], --speechlab-slice): each evaluation broken down by
the configured fields, its slices' figures recorded with the evaluation (database, run file)."""
from __future__ import annotations

from ...grading import GRADES, Grade, rank
from ...metrics import slices
from ...sinks.report import slice_lines
from .base import Feature


class SliceFeature(Feature):
    name = "slices"
    options = (
        (("--speechlab-slice",), dict(
            action="append", default=[], metavar="FIELD", dest="speechlab_slices",
            help="break error rates down by FIELD (a manifest field such as gender, age, accent or speaker; "
            "language; duration, speaking_rate or snr bands) and test whether the slices differ; repeatable; "
            "adds to [tool.speechlab.slices] fields.")),
    )

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.fields: list[str] = list(engine.settings.slices.fields)
        self.found: dict[tuple[str, str], list[slices.FieldSlices]] = {}

    def configure(self, option) -> None:
        self.fields = list(dict.fromkeys([*self.fields, *(option.speechlab_slices or ())]))

    def idle(self) -> set[str]:
        return set() if self.fields else {"speechlab_slices"}

    def of(self, result) -> list[slices.FieldSlices]:
        """The evaluation's slices by every configured field (computed once, recorded with it)."""
        key = (result.model, result.dataset)
        if key not in self.found:
            settings = self.engine.settings.slices
            self.found[key] = slices.slice_report(result.utterances, self.fields, settings.min_size,
                                                  settings.correction)
            self.engine.recorder.annotate(*key, "slices", [f.summary() for f in self.found[key]])
        return self.found[key]

    def cap(self, grade, model: str):
        """A model whose slices differ (the heterogeneity test) is graded by its worst judged slice
        too: the grade that slice's error rate allows, where that is worse than the whole set's."""
        if not self.fields:
            return grade
        engine = self.engine
        policy, alpha, aside = engine.settings.grades, engine.settings.regression.alpha, engine.aside()
        evaluated = [r for (m, d), r in engine.results.items() if m == model and d not in aside]
        worst = [(f, f.worst) for r in evaluated for f in self.of(r) if f.worst is not None and f.differs(alpha)]
        if not worst or not grade.judged:
            return grade
        f, s = max(worst, key=lambda pair: pair[1].rate)
        letter = next((g for g in GRADES[:-1] if s.rate <= policy.levels.get(g, {}).get("wer", -1)), GRADES[-1])
        if rank(letter) <= rank(grade.grade):
            return grade
        ci = f" [{s.ci[0]:.3f}-{s.ci[1]:.3f}]" if s.ci else ""
        why = (f"worst slice {f.field} = {s.value}: error rate {s.rate:.3f}{ci} "
               f"(the slices differ: p = {f.p_adjusted if f.p_adjusted is not None else f.p_value:.4f}); "
               f"the whole set alone: {grade.grade}")
        return Grade(grade.model, letter, f"{why}; {grade.reason}", grade.production_ready and rank(letter) <
                     rank(policy.hallucination_cap), grade.datasets)

    def serialized(self) -> dict:
        if not self.found:
            return {}
        return {"slices": [{"model": m, "dataset": d, "fields": [f.summary() for f in found]}
                           for (m, d), found in self.found.items()]}

    def report_lines(self) -> list[str]:
        return slice_lines(self.serialized().get("slices", []), self.engine.settings.regression.alpha)
