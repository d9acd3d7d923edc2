"""Assertions suites use: a failure shows the figure, the threshold and the worst utterances."""
from __future__ import annotations

import warnings

from ._text import terminal
from .grading import rank
from .metrics.listening import mos
from .metrics.quality import QUALITY_MINIMUMS
from .metrics.results import EvalResult, UtteranceResult
from .metrics.specs import SPECS
from .metrics.stats import format_rate


class NotJudged(Exception):
    """A check that cannot be judged on this evidence: it neither passes nor fails; the pytest
    plugin reports it as skipped with the reason (too few samples, a busy machine, cached timings)."""


class SpeedNotJudged(NotJudged):
    """A speed check whose only timings are from the inference cache (RTF with none re-timed here,
    ``retime`` 0; a service's latency) or were taken on a busy machine."""


class TooFewToJudge(NotJudged):
    """A figure with fewer samples than its ``[tool.speechlab.min_samples]``: "too few to judge
    (n = 3 < 10)"."""


class UnstableVerdictWarning(UserWarning):
    """A threshold verdict that depends on the run (its repeats fall on both sides of the limit),
    passed because ``[tool.speechlab] unstable = "warn"``."""


class SpeechlabAssertionError(AssertionError):
    """A failed check; its message may quote model output and manifest fields, so control
    characters are shown as escapes before pytest prints it."""

    def __init__(self, message: str) -> None:
        super().__init__(terminal(message))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def describe_utterance(u: UtteranceResult) -> str:
    counts = u.words
    figures = (
        f"{'CER' if u.unit == 'char' else 'WER'} {u.wer:.2f}: S={counts.substitutions} D={counts.deletions} I={counts.insertions}"
        if counts else "not scored"
    )
    return (
        f"  {u.utterance.id} ({u.utterance.source}) {figures}\n"
        f"      ref: {u.reference_normalized!r}\n"
        f"      hyp: {u.hypothesis_normalized!r}"
    )


def describe_findings(u: UtteranceResult) -> str:
    lines = [f"  {u.utterance.id} ({u.utterance.source}) hyp: {u.hypothesis!r}"]
    lines += [f"      {f}" for f in u.findings]
    return "\n".join(lines)


def check_below(result: EvalResult, metric: str, threshold: float, worst: int = 5) -> float:
    """Fail unless ``metric`` of ``result`` is at or below ``threshold``; return the figure."""
    __tracebackhide__ = True
    spec = SPECS[metric]  # the figure it judges ("wer": the headline error rate; "hallucination_rate": on speech)
    value = getattr(result, spec.figure)
    label = result.error_label if metric == "wer" else spec.label
    if metric == "cer" and result.multilingual:
        label = f"macro average over {len(result.languages)} languages of each one's CER"
    if metric == "rtf" and result.cached_count and result.retimed:
        label += (f" (re-timed here on {result.retimed['utterances']} utterances: "
                  f"{result.cached_count} outputs came from the cache)")
    where = f"{result.model} on {result.dataset}"
    if metric == "rtf" and result.speed_unjudged:
        raise SpeedNotJudged(result.speed_unjudged)
    too_few = result.too_few(metric)
    if too_few:
        shown = "" if value is None else f" {_fmt(value)}"
        raise TooFewToJudge(f"{label}{shown} of {where} not judged: {too_few} "
                            f"([tool.speechlab.min_samples] {metric})")
    if value is None:
        raise SpeechlabAssertionError(f"{label} of {where} could not be computed: nothing was scored")
    # the spread computed once with the evaluation's variability (its interval is a bootstrap)
    spread = (result.variability or {}).get("figures", {}).get(spec.repeated) if spec.repeated else None
    if spread is not None:
        return _judge_repeats(result, metric, label, where, threshold, spread, worst)
    per_language = {"wer": lambda lang: lang.rate, "cer": lambda lang: lang.cer}.get(metric)
    over = [lang for lang in result.languages.values() if per_language and result.multilingual and not lang.too_few
            and per_language(lang) is not None and per_language(lang) > threshold]
    if value <= threshold and not over:
        return value
    lines = [f"{label} {_fmt(value)} {'>' if value > threshold else '<='} threshold {_fmt(threshold)} for {where}"]
    if over:
        lines.append("over the threshold: " + ", ".join(
            f"{lang.language} {'CER' if metric == 'cer' else lang.metric.upper()} {_fmt(per_language(lang))}" for lang in over))
    if spec.kind:
        flagged = [u for u in result.flagged if u.utterance.kind == spec.kind]
        total = (result.speech_counts if spec.kind == "speech" else result.nonspeech_counts)[1]
        lines.append(f"{format_rate(len(flagged), total)} utterances flagged (Wilson 95% interval):")
        lines.extend(describe_findings(u) for u in flagged[:worst * 2])
        if result.sampling and result.sampling["flagged"]:
            lines.append(result.sampling["note"])
    elif metric in ("wer", "cer"):
        for lang in result.languages.values() if result.multilingual else [None]:
            counts = (lang.counts if metric == "wer" else lang.char_counts) if lang else (
                result.words if metric == "wer" else result.chars)
            in_chars = metric == "cer" or (lang.metric if lang else result.headline[0]) == "cer"
            lines.append(
                f"{f'{lang.language}: ' if lang else ''}{counts.errors} errors / {counts.reference_length} reference "
                f"{'characters' if in_chars else 'words'} (S={counts.substitutions} D={counts.deletions} "
                f"I={counts.insertions}), normalizer {lang.normalizer if lang else result.normalizer}")
        bad = result.worst(worst)
        if bad:
            lines.append(f"worst {len(bad)} utterances:")
            lines.extend(describe_utterance(u) for u in bad)
    else:
        lines.append(
            f"{result.processing_seconds:.2f} s processing for {result.audio_seconds:.2f} s audio; "
            f"threads={result.environment.get('threads')} device={result.environment.get('device')} "
            f"cpu={result.environment.get('cpu')}"
        )
        slow = sorted(result.processed, key=lambda u: u.processing_seconds / max(u.audio_seconds, 1e-9),
                      reverse=True)[:worst]
        lines.append("slowest utterances (RTF): " + ", ".join(
            f"{u.utterance.id} {u.processing_seconds / max(u.audio_seconds, 1e-9):.3f}" for u in slow))
    raise SpeechlabAssertionError("\n".join(lines))


def _judge_repeats(result: EvalResult, metric: str, label: str, where: str, threshold: float, spread: dict,
                   worst: int) -> float:
    """A threshold over K repeats: judged on the mean; when the repeats fall on both sides of the
    limit the verdict depends on the run, and ``result.unstable`` says what that is (fail, or warn
    and pass on the mean)."""
    __tracebackhide__ = True
    repeats = result.repeat_count
    if "flagged" in spread:
        counts = spread["flagged"]
        spread_text = (f"{min(counts)}-{max(counts)} of {spread['of']} flagged over {repeats} repeats"
                       if min(counts) != max(counts) else f"{counts[0]} of {spread['of']} flagged in each of {repeats} repeats")
    else:
        spread_text = (f"{spread['min']:.4f}-{spread['max']:.4f} over {repeats} repeats" if spread["min"] != spread["max"]
                       else f"{spread['min']:.4f} in each of {repeats} repeats")
    ci = spread.get("ci")
    figures = (f"{label} of {where}: mean {spread['mean']:.4f} ({spread_text}"
               + (f"; 95% interval over utterances and repeats {ci[0]:.4f}-{ci[1]:.4f}" if ci else "") + ")")
    varied = (result.variability or {}).get("varied_utterances") or []
    detail = [f"  {v['utterance_id']}: " + " | ".join(repr(t[:60]) for t in v["transcripts"][:4])
              + (" (decoded with sampling)" if v["sampled"] else "") for v in varied[:worst * 2]]
    if spread["min"] <= threshold < spread["max"]:
        message = (f"verdict depends on the run: {spread_text}, limit {threshold:g}\n{figures}\n"
                   f"transcripts that varied between repeats ({len(varied)}):\n" + "\n".join(detail))
        if result.unstable == "warn":
            warnings.warn(UnstableVerdictWarning(terminal(message + '\n(passed: [tool.speechlab] unstable = "warn")')),
                          stacklevel=3)
            return spread["mean"]
        raise SpeechlabAssertionError(message + '\n([tool.speechlab] unstable = "fail"; "warn" passes it with a warning)')
    if spread["mean"] <= threshold:
        return spread["mean"]
    lines = [f"{figures} > threshold {threshold:g} in every repeat"]
    if kind := SPECS[metric].kind:
        flagged = sorted((result.variability or {}).get("flagged", {}).items(), key=lambda kv: -kv[1])
        lines.append("flagged (in how many of the repeats): " + ", ".join(f"{uid} {n}/{repeats}" for uid, n in flagged[:worst * 3]))
        lines.extend(describe_findings(u) for u in [u for u in result.flagged
                                                     if u.utterance.kind == kind][:worst * 2])
    else:
        lines.extend(describe_utterance(u) for u in result.worst(worst))
    raise SpeechlabAssertionError("\n".join(lines))


def check_grade(grade, min_grade: str) -> None:
    """Fail when ``grade`` (a Grade) is below ``min_grade``, with the grade's reason."""
    __tracebackhide__ = True

    if not grade.judged:
        raise TooFewToJudge(f"{grade.model} not graded: {grade.reason}")
    if rank(grade.grade) > rank(min_grade):
        raise SpeechlabAssertionError(
            f"{grade.model} graded {grade.grade}, below the required {min_grade}: {grade.reason}"
        )


def check_no_input_errors(result: EvalResult) -> None:
    __tracebackhide__ = True
    errors = result.errors
    if errors:
        raise SpeechlabAssertionError(
            f"{len(errors)} input error(s) in {result.dataset} with {result.model} "
            f"(the other utterances were evaluated):\n" + "\n".join(f"  {e}" for e in errors)
        )


LONG_FORM_S = 60.0  # a recording at least this long is judged as long-form
# findings that long-form decoding typically produces: loops, text in silence, text past the end
LONG_FORM_KINDS = ("repetition", "repeated_segment", "text_in_silence", "past_end")


def long_recordings(result: EvalResult, min_seconds: float = LONG_FORM_S) -> list[UtteranceResult]:
    return [u for u in result.scored if u.audio_seconds >= min_seconds]


def longest_deleted_run(u: UtteranceResult) -> tuple[int, int]:
    """(length, position in the reference) of the longest run of reference words the hypothesis
    leaves out (deletions, and substitutions of many words by few)."""
    best, at, ref_pos = 0, 0, 0
    run, start = 0, 0
    for op in u.alignment:
        lost = len(op.ref) - len(op.hyp) if op.op in ("delete", "substitute") else 0
        if op.op == "equal":
            run = 0
        elif lost > 0:
            if run == 0:
                start = ref_pos
            run += lost
            if run > best:
                best, at = run, start
        ref_pos += len(op.ref)
    return best, at


def check_long_form(result: EvalResult, max_deleted_run: float, min_seconds: float = LONG_FORM_S) -> None:
    """Fail when a long recording's transcript loops, puts text in a long silence or past the end,
    or leaves out a stretch of more than ``max_deleted_run`` consecutive reference words (a
    dropped window); the message names the model's long-form mode."""
    __tracebackhide__ = True
    long = long_recordings(result, min_seconds)
    if not long:
        raise SpeechlabAssertionError(f"{result.dataset} has no scored recording of {min_seconds:.0f} s or more")
    mode = result.model_info.get("long_form")
    mode_text = (", ".join(f"{k} {v}" for k, v in mode.items()) if isinstance(mode, dict) else
                 "its long-form mode is not stated by the model (info()['long_form'])")
    problems = []
    for u in long:
        loops = [f for f in u.findings if f.kind in LONG_FORM_KINDS]
        problems += [f"  {u.utterance.id} ({u.audio_seconds:.0f} s): {f}" for f in loops[:5]]
        run, at = longest_deleted_run(u)
        if run > max_deleted_run:
            words = u.reference_normalized.split()
            problems.append(f"  {u.utterance.id} ({u.audio_seconds:.0f} s): {run} consecutive reference words left out "
                            f"from word {at} of {len(words)} ({' '.join(words[at:at + 12])!r}...) > {max_deleted_run:g}")
    if problems:
        raise SpeechlabAssertionError(f"long-form decoding of {result.model} on {result.dataset} ({mode_text}):\n"
                                      + "\n".join(problems))


# threshold -> (latency figure, percentile, what it is)
LATENCY_CHECKS = {
    "latency_p95_s": ("end_to_end_s", "p95", "end-to-end seconds per request"),
    "latency_p99_s": ("end_to_end_s", "p99", "end-to-end seconds per request"),
    "first_partial_p95_s": ("first_partial_s", "p95", "seconds to the first partial transcript"),
    "after_audio_p95_s": ("after_audio_s", "p95", "seconds from the end of the audio to the final transcript"),
}


def check_latency(result: EvalResult, thresholds: dict, worst: int = 5) -> dict:
    """Fail when a service's latency percentiles, its share of failed requests or of requests
    that needed a retry exceed their thresholds (``[tool.speechlab.thresholds]`` latency_p95_s,
    latency_p99_s, first_partial_p95_s, after_audio_p95_s, service_error_rate,
    service_fault_rate). The streaming figures are judged where they were measured; what was
    judged is returned ({threshold: figure})."""
    __tracebackhide__ = True
    latency = result.latency
    where = f"{result.model} on {result.dataset}"
    if not latency or not latency["requests"]:
        raise SpeechlabAssertionError(f"no request of {where} reached the service: no latency to judge")
    if latency["cached"]:  # a speed check never passes on timings measured in earlier runs
        raise SpeedNotJudged(f"latency of {where} not judged: {latency['cached']} of {latency['succeeded']} request "
                             "timings came from the inference cache (measured in earlier runs); run with "
                             "--speechlab-cache refresh to measure the service in this session")
    judged, lines = {}, []
    for name, (figure, q, what) in LATENCY_CHECKS.items():
        value = latency[figure].get(q)
        if value is None or name not in thresholds:
            continue
        judged[name] = value
        if value > thresholds[name]:
            ci = latency[figure].get(f"{q}_ci")
            lines.append(f"{q} {what} {value:.3f} s{f' [{ci[0]:.3f}, {ci[1]:.3f}]' if ci else ''} > {name} "
                         f"{thresholds[name]:g} (over {latency[figure]['n']} requests)")
    rates = {"service_error_rate": (latency["failed"], "failed"),
             "service_fault_rate": (latency["requests_with_faults"], "needed a retry or met a fault")}
    for name, (count, what) in rates.items():
        rate = count / latency["requests"]
        judged[name] = rate
        if name in thresholds and rate > thresholds[name]:
            lines.append(f"{format_rate(count, latency['requests'])} requests {what} > {name} {thresholds[name]:g}")
    if lines:
        context = [f"concurrency {latency['concurrency']}, {latency['requests']} requests "
                   f"({latency['warmup_requests_excluded']} warm-up excluded)"]
        if latency["faults"]:
            context.append("faults: " + ", ".join(f"{k} x{v}" for k, v in sorted(latency["faults"].items())))
        if latency["errors_by_cause"]:
            context.append("failed requests by cause: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(latency["errors_by_cause"].items())))
            context += [f"  {e.utterance_id or e.source}: {e.message[:300]}" for e in result.errors[:worst]]
        slow = sorted((u for u in result.processed), key=lambda u: u.processing_seconds, reverse=True)[:worst]
        context.append("slowest requests: " + ", ".join(f"{u.utterance.id} {u.processing_seconds:.3f} s" for u in slow))
        raise SpeechlabAssertionError(f"latency of {where}:\n" + "\n".join(lines + context))
    return judged


def check_robustness(evaluation, threshold: float) -> None:
    """Fail when a perturbation's WERD (the rise of WER over the clean set, paired on the same
    utterances) passes ``threshold`` (``[tool.speechlab.thresholds] werd``) at a severity up to
    ``[tool.speechlab.robustness] gate_severity``; the message gives every such perturbation with
    its interval. Harsher severities are measured and reported, not judged."""
    __tracebackhide__ = True
    problems = evaluation.problems(threshold)
    if problems:
        raise SpeechlabAssertionError(f"robustness of {evaluation.model} on {evaluation.dataset}:\n" + "\n".join(problems))


def check_quality(tts_eval, metric: str, minimum: float, worst: int = 5) -> float:
    """Fail when a TTS model's mean DNSMOS OVRL (``metric="mos"``) or mean speaker similarity
    (``"speaker_similarity"``) over its text set is below ``minimum``; the message gives the
    interval and the lowest-scoring items. Fails, saying why, when it could not be measured."""
    __tracebackhide__ = True
    quality = tts_eval.quality
    figure, label = QUALITY_MINIMUMS[metric]
    label = f"mean {label}"
    where = f"{tts_eval.model} on {tts_eval.texts}"
    if quality is None or quality.problem:
        raise SpeechlabAssertionError(f"{label} of {where} {quality.problem if quality else 'not measured ([tool.speechlab.tts] quality = false)'}")
    value = quality.mean(figure)
    if value is None:
        raise SpeechlabAssertionError(f"{label} of {where}: no clip could be scored (silent: {', '.join(quality.silent)})")
    if value < minimum:
        items = quality.similarity if figure == "speaker_similarity" else {i: m[figure] for i, m in quality.mos.items()}
        low = sorted(items.items(), key=lambda kv: kv[1])[:worst]
        ci = quality.ci(figure)
        raise SpeechlabAssertionError(
            f"{label} of {where}: {value:.3f}{f' [{ci[0]:.3f}, {ci[1]:.3f}]' if ci else ''} < {metric} {minimum:g}"
            + (f" (to {quality.reference})" if figure == "speaker_similarity" else "")
            + "\nlowest: " + ", ".join(f"{i} {v:.2f}" for i, v in low))
    return value


def check_slices(found: list, metric: str, limit: float, where: str, alpha: float = 0.05) -> float:
    """Judge an evaluation's slices (``metrics.slices.slice_report``): ``slice_wer``, the worst
    slice's error rate at or below ``limit``; ``slice_gap``, no field whose worst and best slices
    differ (heterogeneity test, family-adjusted p < ``alpha``) by more than ``limit``. Slices too
    small to judge are never ranked; with none to judge the check is not judged. Returns the figure."""
    __tracebackhide__ = True
    spec = SPECS[metric]
    judged = [f for f in found if (f.judged if metric == "slice_wer" else f.p_value is not None)]
    if not judged:
        minimum = next((s.minimum for f in found for s in f.slices), None)
        raise TooFewToJudge(f"{spec.label} of {where} not judged: no field has "
                            f"{'a slice' if metric == 'slice_wer' else 'two slices'} with {minimum or 'enough'} scored "
                            f"utterances ([tool.speechlab.slices] min_size); fields: "
                            + ", ".join(f"{f.field} ({len(f.slices)} slices)" for f in found))
    if metric == "slice_wer":
        worst = max((f.worst for f in judged), key=lambda s: s.rate)
        failing = [f.worst for f in judged if f.worst.rate > limit]
        if not failing:
            return worst.rate
        raise SpeechlabAssertionError(
            f"{spec.label} above threshold {_fmt(limit)} for {where}:\n" + "\n".join(
                f"  {s.field} = {s.value}: {_fmt(s.rate)}" + (f" [95% CI {_fmt(s.ci[0])}, {_fmt(s.ci[1])}]" if s.ci else "")
                + f" over {len(s.scored)} utterances" for s in failing))
    largest = max(judged, key=lambda f: f.gap)
    failing = [f for f in judged if f.gap > limit and f.differs(alpha)]
    if not failing:
        return largest.gap
    raise SpeechlabAssertionError(
        f"{spec.label} above threshold {_fmt(limit)} for {where}, and the slices differ:\n" + "\n".join(
            f"  {f.field}: {f.worst.value} {_fmt(f.worst.rate)} - {f.best.value} {_fmt(f.best.rate)} = "
            f"{f.gap:+.4f} [95% CI {f.gap_ci[0]:+.4f}, {f.gap_ci[1]:+.4f}], heterogeneity p = {f.p_value:.4f}"
            + (f" (Holm over {f.family} fields: {f.p_adjusted:.4f})" if f.family > 1 else "") for f in failing))


def check_human_mos(scores: list[float], limit: float, where: str, minimum: int) -> float:
    """Listeners' mean opinion score (ACR ratings from ``speechlab view --listening``) at or above
    ``limit``; not judged below ``minimum`` ratings (``[tool.speechlab.min_samples] human_mos``)."""
    __tracebackhide__ = True
    found = mos(scores)
    if found["n"] < minimum:
        raise TooFewToJudge(f"listeners' MOS of {where} not judged: {found['n']} ratings < {minimum} "
                            "([tool.speechlab.min_samples] human_mos; rate its clips in `speechlab view --listening`)")
    if found["mos"] >= limit:
        return found["mos"]
    ci = f" [95% CI {found['ci'][0]:.2f}, {found['ci'][1]:.2f}]" if found["ci"] else ""
    raise SpeechlabAssertionError(f"listeners' MOS {found['mos']:.2f}{ci} over {found['n']} ratings < threshold "
                                  f"{limit:.2f} for {where}")
