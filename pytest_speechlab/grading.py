"""Production-readiness grades: WER, RTF and hallucination measurements -> A+ ... F, with the reason.

``[tool.speechlab.grades]`` sets the policy; the default is ``DEFAULT_LEVELS`` with a cap at C for
any hallucination on a non-speech clip or a speech hallucination rate above 5%.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ._tables import check_value, checked
from ._types import SpeechlabError
from .metrics.quality import QUALITY_MINIMUMS
from .metrics.results import EvalResult, listed, too_few
from .metrics.stats import format_rate

GRADES = ("A+", "A", "B", "C", "D", "F")
NOT_GRADED = "n/a"  # no error figure had enough samples to judge ([tool.speechlab.min_samples])
# The worst WER and RTF each grade allows, on every dataset the model was evaluated on.
DEFAULT_LEVELS = {
    "A+": {"wer": 0.05, "rtf": 0.2},
    "A": {"wer": 0.10, "rtf": 0.5},
    "B": {"wer": 0.15, "rtf": 1.0},
    "C": {"wer": 0.25, "rtf": 1.0},
    "D": {"wer": 0.40, "rtf": 2.0},
}


@dataclass(frozen=True)
class GradePolicy:
    levels: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    max_hallucination_rate: float = 0.05  # on speech utterances
    hallucination_cap: str = "C"
    min_grade: str | None = None

    @classmethod
    def from_table(cls, table: dict, where: str) -> GradePolicy:
        policy = checked(cls, table, where, types={"min_grade": str, "levels": dict})
        levels = policy.pop("levels", None)
        for key in ("hallucination_cap", "min_grade"):
            if key in policy:
                check_grade_name(policy[key], f"{where}.{key}")
        if levels is not None:
            for grade, limits in levels.items():
                if grade not in GRADES[:-1]:
                    raise SpeechlabError(f"{where}.levels: unknown grade {grade!r} (A+, A, B, C, D; F is the rest)")
                check_value(limits, dict, f"{where}.levels.{grade}")
                if set(limits) - {"wer", "rtf"}:
                    raise SpeechlabError(f"{where}.levels.{grade}: only wer and rtf can be set")
                for metric, limit in limits.items():
                    check_value(limit, float, f"{where}.levels.{grade}.{metric}")
            policy["levels"] = {g: {**DEFAULT_LEVELS.get(g, {}), **levels.get(g, {})} for g in GRADES[:-1]}
        return cls(**policy)


def check_grade_name(grade: str, where: str) -> str:
    if grade not in GRADES:
        raise SpeechlabError(f"{where}: unknown grade {grade!r}; grades are {', '.join(GRADES)}")
    return grade


def rank(grade: str) -> int:
    """Smaller is better: A+ is 0, F is 5 (not graded: after F)."""
    return len(GRADES) if grade == NOT_GRADED else GRADES.index(grade)


@dataclass(frozen=True)
class Grade:
    model: str
    grade: str
    reason: str  # ends with the datasets it covers: "[over speechlab/speech, speechlab/nonspeech]"
    production_ready: bool
    datasets: tuple[str, ...] = ()

    @property
    def judged(self) -> bool:
        return self.grade != NOT_GRADED

    def __str__(self) -> str:
        return f"{self.grade}: {self.reason}"


def _short(text: str, limit: int = 30) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _hallucination_examples(results: list[EvalResult], kind: str, limit: int = 3) -> str:
    flagged = [u for r in results for u in r.flagged if u.utterance.kind == kind]
    return ", ".join(f"{u.utterance.id} {_short(u.hypothesis)}" for u in flagged[:limit]) + (
        ", ..." if len(flagged) > limit else ""
    )


def grade_model(model: str, results: Iterable[EvalResult], policy: GradePolicy | None = None) -> Grade:
    """The grade of ``model`` over ``results``. With repeats, each repeat is graded on its own
    transcripts: the grade is the worst of them, and where they differ the reason says the grade
    depends on the run, and how often each grade came out."""
    policy = policy or GradePolicy()
    results = list(results)
    repeats = min((r.repeat_count for r in results), default=1)
    if repeats < 2:
        return _grade(model, results, policy)
    grades = [_grade(model, [r.runs[k] for r in results], policy) for k in range(repeats)]
    worst = max(grades, key=lambda g: rank(g.grade))
    letters = [g.grade for g in grades]
    if len(set(letters)) == 1:
        return Grade(model, worst.grade, worst.reason.replace(" [over ", f"; the same grade in each of {repeats} repeats [over ", 1),
                     worst.production_ready, worst.datasets)
    tally = ", ".join(f"{g} in {letters.count(g)} of {repeats}" for g in sorted(set(letters), key=rank))
    return Grade(model, worst.grade, f"the grade depends on the run ({tally} repeats; the worst is given): {worst.reason}",
                 worst.production_ready and all(g.production_ready for g in grades), worst.datasets)


def _grade(model: str, results: list[EvalResult], policy: GradePolicy) -> Grade:
    if not results or not any(r.processed for r in results):
        return Grade(model, "F", "nothing was evaluated (model failed to load or every input failed)", False)
    # the error-rate limit holds for each language's own figure (WER; CER where written without
    # spaces), never for a figure pooled across languages, and only where it had enough utterances;
    # speed never on cached timings alone, a busy machine or too few calls
    errors, unjudged = [], []
    for r in results:
        few = r.unjudged_languages
        if few:
            unjudged.append(f"{r.dataset} [{listed(few)}] too few to judge (each needs {few[0].minimum})")
        for lang in r.languages.values() if r.multilingual else []:
            if not lang.too_few:
                errors.append((lang.metric.upper(), lang.rate, f"{r.dataset} [{lang.language}]"))
        if not r.multilingual and r.scored:
            few = r.too_few(r.headline[0])
            (unjudged.append(f"{r.dataset} {few}") if few else
             errors.append((r.headline[0].upper(), r.error_rate, r.dataset)))
    speeds = [("RTF", r.speed_rtf, r.dataset) for r in results if not r.speed_unjudged and not r.too_few("rtf")]
    if not errors and unjudged:
        return Grade(model, NOT_GRADED, "error rates not judged: " + "; ".join(unjudged)
                     + f" [over {', '.join(dict.fromkeys(r.dataset for r in results))}]", False,
                     tuple(dict.fromkeys(r.dataset for r in results)))

    def failure(grade: str) -> str | None:
        """Why the model does not reach ``grade`` on WER/RTF, or None if it does."""
        limits = policy.levels[grade]
        for name, value, where in errors + speeds:
            limit = limits.get("rtf" if name == "RTF" else "wer")
            if value is not None and limit is not None and value > limit:
                return f"{name} {value:.3f} on {where} > {limit} needed for {grade}"
        return None

    base, base_reason = "F", None
    for grade in GRADES[:-1]:
        why = failure(grade)
        if why is None:
            base = grade
            break
        base_reason = why
    minimums = results[0].min_samples
    ns_flagged = sum(r.nonspeech_counts[0] for r in results)
    ns_total = sum(r.nonspeech_counts[1] for r in results)
    ns_too_few = ns_total and too_few(ns_total, minimums.get("nonspeech_hallucination_rate", 1))
    if base == "A+" and (not ns_total or ns_too_few):
        # A+ promises "no hallucination": without (enough) non-speech clips that half was never measured.
        base, reason = "A", ("WER and RTF within A+ limits, but hallucination on non-speech was not measured "
                             + (f"({ns_too_few} non-speech clips)" if ns_too_few else
                                "(no non-speech clips among the datasets)") + ": A+ needs it")
    elif base == "A+":
        reason = "WER and RTF within A+ limits on every dataset; no hallucination found"
    else:
        reason = base_reason

    caps = []
    if ns_flagged and not ns_too_few:
        caps.append(f"hallucinated on {format_rate(ns_flagged, ns_total)} non-speech clips: "
                    f"{_hallucination_examples(results, 'nonspeech')}")
    sp_flagged = sum(r.speech_counts[0] for r in results)
    sp_total = sum(r.speech_counts[1] for r in results)
    sp_too_few = sp_total and too_few(sp_total, minimums.get("hallucination_rate", 1))
    if sp_total and not sp_too_few and sp_flagged / sp_total > policy.max_hallucination_rate:
        caps.append(f"hallucination rate {format_rate(sp_flagged, sp_total)} = {sp_flagged / sp_total:.1%} on speech "
                    f"> {policy.max_hallucination_rate:.0%}: {_hallucination_examples(results, 'speech')}")
    grade = base
    if caps and rank(base) < rank(policy.hallucination_cap):
        grade = policy.hallucination_cap
        reason = "; ".join(caps) + f" (not production ready; WER/RTF alone: {base})"
    elif caps:
        reason = f"{reason}; also " + "; ".join(caps)
    if unjudged:
        reason += "; not judged (too few): " + "; ".join(unjudged)
    if ns_flagged and ns_too_few:
        reason += f"; hallucinated on {format_rate(ns_flagged, ns_total)} non-speech clips, not judged: {ns_too_few}"
    if sp_flagged and sp_too_few:
        reason += f"; hallucinated on {format_rate(sp_flagged, sp_total)} speech utterances, not judged: {sp_too_few}"
    ready = not caps and rank(grade) < rank(policy.hallucination_cap)
    unjudged = [r for r in results if r.speed_unjudged]
    if unjudged:  # a busy machine, or cached outputs with retime 0: the RTF limits were not applied, and the grade says so
        busy = [r.dataset for r in unjudged if (r.timing_contention or {}).get("busy")]
        cached = [r.dataset for r in unjudged if r.dataset not in busy]
        if busy:
            reason += f"; RTF limits not judged on {', '.join(busy)} (the machine was busy while it was timed)"
        if cached:
            reason += (f"; RTF limits not judged on {', '.join(cached)} (outputs from the inference cache, "
                       "none re-timed here: retime 0)")
    datasets = list(dict.fromkeys(r.dataset for r in results))
    return Grade(model, grade, f"{reason} [over {', '.join(datasets)}]", ready, tuple(datasets))


def cap_grade(grade, evals: list, policy, minimums: dict | None = None):
    """A TTS model whose audio has problems, that differs on a second synthesis although it claims
    determinism, or whose mean DNSMOS OVRL or speaker similarity is below ``minimums`` (mos,
    speaker_similarity) is not production ready: the grade is capped like a hallucinating ASR
    model's."""
    reasons = []
    for e in evals:
        quality = getattr(e, "quality", None)
        for metric, (figure, label) in QUALITY_MINIMUMS.items():
            value = quality.mean(figure) if quality is not None and not quality.problem else None
            if value is not None and minimums and metric in minimums and value < minimums[metric]:
                reasons.append(f"{label} {value:.2f} < {minimums[metric]:g} on {e.texts}")
    problems = [(item, p) for e in evals for item, found in e.problems.items() for p in found]
    if problems:
        shown = "; ".join(f"{item}: {p}" for item, p in problems[:3]) + ("; ..." if len(problems) > 3 else "")
        reasons.append(f"audio problems on {len({i for i, _ in problems})} item(s): {shown}")
    differing = [i for e in evals if e.claims_deterministic for i in e.nondeterministic]
    if differing:
        reasons.append(f"claims determinism but {len(differing)} item(s) differed on a second synthesis: "
                       + ", ".join(differing[:3]))
    if not reasons:
        return grade
    if rank(grade.grade) < rank(policy.hallucination_cap):
        return Grade(grade.model, policy.hallucination_cap,
                     "; ".join(reasons) + f" (not production ready; intelligibility/RTF alone: {grade.grade})", False)
    return Grade(grade.model, grade.grade, f"{grade.reason}; also " + "; ".join(reasons), False)
