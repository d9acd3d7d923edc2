"""Comparing two evaluations of the same utterances: what `speechlab compare` prints and what
``--speechlab-fail-on-regression`` gates on.

A gate judges a family of comparisons (every model x dataset x metric); :func:`judge` applies the
configured correction over that whole family before any verdict is read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import gate_report
from .metrics.results import SIGNAL_ONLY, too_few
from .metrics.stats import (
    GatePolicy,
    PairedComparison,
    apply_correction,
    is_regression,
    mcnemar_exact,
    paired_compare,
)

# Identity fields whose change makes two runs' figures incomparable as "the same model".
IDENTITY_KEYS = ("weights_sha256", "weights_digest", "source_weights_sha256", "backend", "backend_version",
                 "dtype", "device")


@dataclass
class Side:
    """One model x dataset evaluation, reduced to what a comparison needs."""

    label: str  # "run 1a2b3c tiny.en" or "this session"
    model: str
    dataset: str
    words: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (errors, reference words)
    chars: dict[str, tuple[int, int]] = field(default_factory=dict)
    hypotheses: dict[str, str] = field(default_factory=dict)
    flagged: set[str] = field(default_factory=set)  # utterances with a hallucination finding
    processing_seconds: float = 0.0
    audio_seconds: float = 0.0
    cpu: str = ""
    identity: dict = field(default_factory=dict)  # the model's info: weights, backend, parameters
    languages: dict[str, str] = field(default_factory=dict)  # id -> language of each scored utterance
    speed_unjudged: str | None = None  # why this side has no timing to judge (cached outputs, retime 0, busy)
    environment: dict = field(default_factory=dict)  # where it ran: cpu, cpu_count, threads, arch, python
    # the slice each utterance falls in, per slice field ({field: {utterance id: value}}): the gate
    # also compares each slice large enough (a regression in one slice caught on a flat whole set)
    slices: dict[str, dict[str, str]] = field(default_factory=dict)
    slice_min: int = 10

    def by_language(self) -> dict[str, dict[str, tuple[int, int]]]:
        """The scored utterances' (errors, reference units) per language."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for uid, counts in self.words.items():
            out.setdefault(self.languages.get(uid, ""), {})[uid] = counts
        return out

    @property
    def rtf(self) -> float | None:
        return self.processing_seconds / self.audio_seconds if self.audio_seconds else None

    @classmethod
    def from_rows(cls, label: str, model: str, dataset: str, rows: list[dict], cpu: str = "",
                  identity: dict | None = None, environment: dict | None = None) -> Side:
        environment = environment if isinstance(environment, dict) else {}
        side = cls(label, model, dataset, cpu=cpu or str(environment.get("cpu") or ""), identity=identity or {},
                   environment=environment)
        for r in rows:
            if r.get("error"):
                continue
            uid = r["utterance_id"]
            side.hypotheses[uid] = r.get("hypothesis") or ""
            side.processing_seconds += r.get("processing_seconds") or 0.0
            side.audio_seconds += r.get("audio_seconds") or 0.0
            if any(isinstance(f, dict) and f.get("kind") not in SIGNAL_ONLY for f in r.get("findings") or ()):
                side.flagged.add(uid)
            if r.get("hits") is not None:
                if isinstance(r.get("language"), str):
                    side.languages[uid] = r["language"]
                side.words[uid] = (r["substitutions"] + r["deletions"] + r["insertions"],
                                   r["hits"] + r["substitutions"] + r["deletions"])
            if r.get("char_length"):
                side.chars[uid] = (r["char_errors"], r["char_length"])
        return side

    @classmethod
    def from_result(cls, label: str, result) -> Side:
        side = cls.from_rows(label, result.model, result.dataset, [u.row() for u in result.utterances],
                             result.environment.get("cpu", ""), result.model_info, result.environment)
        if result.cached_count:  # the RTF rule judges timings measured here, or none (retime 0)
            retimed = result.retimed or {}
            side.processing_seconds = retimed.get("processing_seconds", 0.0)
            side.audio_seconds = retimed.get("audio_seconds", 0.0)
        side.speed_unjudged = result.speed_unjudged  # cached with retime 0, or a busy machine
        return side


@dataclass
class HallucinationComparison:
    """Utterances with a hallucination finding, paired: an exact test on those that changed."""

    n: int
    count_a: int
    count_b: int
    worse: list[str]  # flagged only in the candidate
    better: list[str]
    p_value: float
    p_adjusted: float | None = None
    family: int = 1
    correction: str = "none"

    @property
    def p_for_verdict(self) -> float:
        return self.p_value if self.p_adjusted is None else self.p_adjusted

    def detectable(self, alpha: float) -> str:
        """The fewest newly flagged utterances (with as many no longer flagged as observed) that
        the exact test flags at the family's first Holm level, or "not testable" when none can."""
        level = alpha / max(self.family, 1)
        for worse in range(len(self.better) + 1, self.n + 1):
            if mcnemar_exact(worse, len(self.better)) < level:
                return f"detectable: {worse - len(self.better):+d} net newly flagged of {self.n} (exact)"
        return f"not testable with n = {self.n} (no count of newly flagged utterances reaches p < {level:.3g})"

    @classmethod
    def of(cls, a: Side, b: Side) -> HallucinationComparison | None:
        common = set(a.hypotheses) & set(b.hypotheses)
        if not common:
            return None
        worse = sorted(k for k in common if k in b.flagged and k not in a.flagged)
        better = sorted(k for k in common if k in a.flagged and k not in b.flagged)
        return cls(len(common), len(a.flagged & common), len(b.flagged & common), worse, better,
                   mcnemar_exact(len(worse), len(better)))


def _flat(value, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): json.dumps(value, default=str, sort_keys=True)}


def identity_changes(a: dict, b: dict) -> list[str]:
    """What differs between two model identities: "beam_size 5 -> 1", "weights_sha256 ab12.. -> cd34.."."""
    if not a or not b:
        return []
    changes = []
    for key in IDENTITY_KEYS:
        if a.get(key) != b.get(key) and (a.get(key) is not None or b.get(key) is not None):
            changes.append(f"{key} {_short(a.get(key))} -> {_short(b.get(key))}")
    pa = {**_flat(a.get("params") or {}), **_flat(a.get("decode") or {})}
    pb = {**_flat(b.get("params") or {}), **_flat(b.get("decode") or {})}
    for key in sorted(set(pa) | set(pb)):
        if pa.get(key) != pb.get(key):
            changes.append(f"{key} {pa.get(key, 'unset')} -> {pb.get(key, 'unset')}")
    return changes


# Where a run happened, by the figures a change there affects.
MACHINE_KEYS = (("cpu", "CPU"), ("cpu_count", "CPUs"), ("arch", "architecture"), ("threads", "threads"),
                ("device", "device"))


def machine_changes(a: dict, b: dict, info_a: dict | None = None, info_b: dict | None = None) -> list[str]:
    """What differs between where two evaluations ran (``environment`` of each), and the backend
    version from each identity: "CPU Intel Xeon -> AMD EPYC", "threads 2 -> 4". A key either side
    did not record is not a change."""
    changes = []
    for key, name in MACHINE_KEYS:
        if a.get(key) is not None and b.get(key) is not None and a.get(key) != b.get(key):
            changes.append(f"{name} {a.get(key)} -> {b.get(key)}")
    va, vb = (info_a or {}).get("backend_version"), (info_b or {}).get("backend_version")
    if va and vb and va != vb:
        changes.append(f"backend version {va} -> {vb}")
    return changes


MACHINE_NOTE = ("RTF is not comparable across these (its regression rule is not judged); transcripts may differ "
                "too (CTranslate2's int8 kernels differ by CPU and version; a thread count can change one)")


def _short(value) -> str:
    text = "unset" if value is None else str(value)
    return text[:19] + "…" if text.startswith("sha256:") and len(text) > 20 else text


@dataclass
class Comparison:
    baseline: Side
    candidate: Side
    wer: PairedComparison | None
    cer: PairedComparison | None
    policy: GatePolicy
    hallucination: HallucinationComparison | None = None
    # across several languages: each language's figure compared on its own (WER and CER are then None)
    languages: dict[str, PairedComparison] = field(default_factory=dict)
    # each slice large enough to judge ("WER accent=b"), compared on its own utterances
    slices: dict[str, PairedComparison] = field(default_factory=dict)

    @property
    def figures(self) -> list[tuple[str, PairedComparison | None]]:
        """(name, comparison) of each error figure judged: WER and CER, or one per language."""
        if self.languages:
            found = [(f"{lang} error", cmp) for lang, cmp in self.languages.items()]
        else:
            found = [("WER", self.wer), ("CER", self.cer)]
        return found + list(self.slices.items())

    @property
    def tests(self) -> list:
        """The comparisons this pair contributes to the gate's family."""
        found = [c for _, c in self.figures if c is not None]
        if self.policy.hallucination and self.hallucination is not None:
            found.append(self.hallucination)
        return found

    @property
    def identity_changes(self) -> list[str]:
        return identity_changes(self.baseline.identity, self.candidate.identity)

    @property
    def machine_changes(self) -> list[str]:
        return machine_changes(self.baseline.environment, self.candidate.environment,
                               self.baseline.identity, self.candidate.identity)

    @property
    def rtf_unjudged(self) -> str | None:
        """Why the RTF rule is not judged: a side without timings that hold, or another machine."""
        if self.candidate.speed_unjudged or self.baseline.speed_unjudged:
            return self.candidate.speed_unjudged or f"baseline: {self.baseline.speed_unjudged}"
        moved = [c for c in self.machine_changes if not c.startswith("backend version")]
        if moved:
            return f"the baseline ran elsewhere ({', '.join(moved)}): RTF is not comparable across machines"
        return None

    @property
    def rtf_ratio(self) -> float | None:
        a, b = self.baseline.rtf, self.candidate.rtf
        return b / a if a and b is not None else None

    def _p(self, cmp) -> str:
        text = f"p(worse) = {cmp.p_value:.4f}"
        if cmp.p_adjusted is not None and cmp.family > 1 and cmp.correction != "none":
            text += f", {_CORRECTION_NAMES[cmp.correction]} over {cmp.family} comparisons: {cmp.p_adjusted:.4f}"
        return text

    def hallucination_regressed(self) -> bool:
        h = self.hallucination
        return (self.policy.hallucination and h is not None and h.count_b > h.count_a
                and h.n >= self.policy.min_samples and h.p_for_verdict < self.policy.alpha)

    @property
    def regressions(self) -> list[str]:
        found = []
        for name, cmp in self.figures:
            if cmp is not None and is_regression(cmp, self.policy):
                found.append(f"{name} {cmp.rate_a:.4f} -> {cmp.rate_b:.4f} (+{cmp.delta:.4f}, "
                             f"{cmp.confidence:.0%} CI [{cmp.ci[0]:+.4f}, {cmp.ci[1]:+.4f}], {self._p(cmp)} < "
                             f"{self.policy.alpha}, effect >= {self.policy.min_effect})")
        if self.hallucination_regressed():
            h = self.hallucination
            found.append(f"hallucinations {h.count_a}/{h.n} -> {h.count_b}/{h.n} utterances "
                         f"({len(h.worse)} newly flagged, {len(h.better)} no longer; exact {self._p(h)} < {self.policy.alpha})")
        ratio = self.rtf_ratio
        if ratio is not None and ratio > 1 + self.policy.rtf_tolerance and not self.rtf_unjudged:
            found.append(f"RTF {self.baseline.rtf:.3f} -> {self.candidate.rtf:.3f} (x{ratio:.2f} > "
                         f"x{1 + self.policy.rtf_tolerance:.2f}; machines: {self.baseline.cpu or '?'} -> "
                         f"{self.candidate.cpu or '?'})")
        return found

    def changed(self) -> list[str]:
        common = sorted(set(self.baseline.hypotheses) & set(self.candidate.hypotheses))
        return [k for k in common if self.baseline.hypotheses[k] != self.candidate.hypotheses[k]]

    def worse(self) -> list[str]:
        a, b = self.baseline.words, self.candidate.words
        return sorted((k for k in set(a) & set(b) if b[k][0] > a[k][0]), key=lambda k: (a[k][0] - b[k][0], k))

    def verdict(self, cmp: PairedComparison) -> str:
        """What the gate makes of one figure's comparison."""
        if not cmp.testable:
            return f"not testable with n = {cmp.n}"
        if cmp.n < self.policy.min_samples:
            return too_few(cmp.n, self.policy.min_samples)
        if is_regression(cmp, self.policy):
            return "REGRESSION"
        if cmp.ci[1] < 0:
            return "better"
        if cmp.p_for_verdict < self.policy.alpha:
            return f"significant but below the minimum effect {self.policy.min_effect}"
        return "within noise"

    @staticmethod
    def detectable(cmp: PairedComparison) -> str:
        """What this comparison could have seen: its minimum detectable effect, or why there is none."""
        if not cmp.testable:
            return f"; {cmp.mde_basis}"
        if cmp.mde is None:
            return f"; no rise is detectable with 80% power on {cmp.n} utterances"
        return f"; detectable with 80% power: {cmp.mde:+.4f}"

    def hallucination_verdict(self) -> str:
        h = self.hallucination
        if self.hallucination_regressed():
            return "REGRESSION"
        if not self.policy.hallucination:
            return "not judged"
        if mcnemar_exact(h.n, len(h.better)) >= self.policy.alpha / max(h.family, 1):
            return f"not testable with n = {h.n}"
        return too_few(h.n, self.policy.min_samples) or "within noise"

    def headline(self) -> str:
        """The verdict in one line, with what it could have seen: "no regression larger than +0.0450
        on these 26 utterances", never a bare "no regression"."""
        if self.regressions:
            return "REGRESSION: " + "; ".join(self.regressions)
        judged = [(name, c) for name, c in self.figures if c is not None and name not in self.slices]
        if not judged:
            return "not judged: no scored utterances in common"
        bounds, unjudged = [], 0
        for name, cmp in judged:
            verdict = self.verdict(cmp)
            if verdict.startswith(("not testable", "too few")):
                bounds.append(f"{name} {verdict}")
                unjudged += 1
            elif cmp.mde is None:
                bounds.append(f"{name}: no rise is detectable on these {cmp.n} utterances")
            else:
                bounds.append(f"{name} larger than {cmp.mde:+.4f}")
        lead = "not judged" if unjudged == len(judged) else "no regression"
        sliced = f"; {len(self.slices)} slices compared, none regressed" if self.slices else ""
        return f"{lead} ({'; '.join(bounds)}) on these {judged[0][1].n} utterances{sliced}"

    def analysis(self) -> dict:
        """The whole comparison as plain data (numbers and strings): what every renderer of the gate
        (terminal, Markdown, HTML, JUnit, run file, viewer) reads; ``sinks.gate_report`` renders it."""
        a, b, policy = self.baseline, self.candidate, self.policy
        figures = []
        for name, cmp in self.figures:
            if cmp is None:
                figures.append({"name": name, "verdict": "no scored utterances in common"})
                continue
            adjusted = cmp.p_adjusted if cmp.family > 1 and cmp.correction != "none" else None
            figures.append({"name": name, "baseline": cmp.rate_a, "candidate": cmp.rate_b, "difference": cmp.delta,
                            "ci": [cmp.ci[0], cmp.ci[1]], "confidence": cmp.confidence, "n": cmp.n,
                            "p": cmp.p_value, "p_adjusted": adjusted, "family": cmp.family,
                            "correction": _CORRECTION_NAMES.get(cmp.correction, cmp.correction),
                            "mde": cmp.mde, "detectable": self.detectable(cmp)[2:], "verdict": self.verdict(cmp)})
        out = {
            "baseline": {"model": a.model, "label": a.label, "dataset": a.dataset, "cpu": a.cpu},
            "candidate": {"model": b.model, "label": b.label, "dataset": b.dataset, "cpu": b.cpu},
            "regressed": bool(self.regressions), "headline": self.headline(), "regressions": self.regressions,
            "policy": {"alpha": policy.alpha, "min_effect": policy.min_effect, "correction": policy.correction,
                       "rtf_tolerance": policy.rtf_tolerance, "min_samples": policy.min_samples},
            "identity_changes": self.identity_changes, "machine_changes": self.machine_changes,
            "machine_note": MACHINE_NOTE if self.machine_changes else None,
            "figures": figures, "flips": None, "hallucination": None, "rtf": None,
            "worse": [{"id": k, "errors_a": a.words[k][0], "errors_b": b.words[k][0], "hyp_a": a.hypotheses[k],
                       "hyp_b": b.hypotheses[k]} for k in self.worse()],
        }
        worse = {w["id"] for w in out["worse"]}
        out["changed"] = [{"id": k, "hyp_a": a.hypotheses[k], "hyp_b": b.hypotheses[k]} for k in self.changed()
                          if k not in worse]
        if self.wer is not None:
            out["flips"] = {"note": self.wer.note, "correct_to_wrong": len(self.wer.flipped_worse),
                            "wrong_to_correct": len(self.wer.flipped_better), "p": self.wer.mcnemar_p}
        h = self.hallucination
        if h is not None:
            out["hallucination"] = {
                "baseline": h.count_a, "candidate": h.count_b, "n": h.n, "p": h.p_value,
                "p_adjusted": h.p_adjusted if h.family > 1 and h.correction != "none" else None,
                "family": h.family, "correction": _CORRECTION_NAMES.get(h.correction, h.correction),
                "verdict": self.hallucination_verdict(), "detectable": h.detectable(policy.alpha),
                "no_longer": len(h.better), "newly_flagged": [{"id": k, "hypothesis": b.hypotheses.get(k, "")} for k in h.worse]}
        ratio, unjudged = self.rtf_ratio, self.rtf_unjudged
        if ratio is not None or unjudged:
            out["rtf"] = {"baseline": a.rtf, "candidate": b.rtf, "ratio": ratio, "tolerance": 1 + policy.rtf_tolerance,
                          "unjudged": unjudged, "verdict": "not judged" if unjudged or ratio is None else
                          "REGRESSION" if ratio > 1 + policy.rtf_tolerance else "within tolerance"}
        return out

    def report(self, limit: int = 10) -> str:
        """The terminal's form of :meth:`analysis`."""
        return gate_report.text(self.analysis(), limit)


_CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def compare(baseline: Side, candidate: Side, policy: GatePolicy | None = None, family: int = 1,
            detectable: bool = True) -> Comparison:
    """One model x dataset pair; ``family`` (the number of comparisons the gate judges) sizes the
    minimum detectable effect (``detectable=False``: none is simulated). Call :func:`judge` on all
    of a gate's comparisons before reading verdicts."""
    policy = policy or GatePolicy()
    kw = dict(confidence=1 - 2 * policy.alpha, alpha=policy.alpha, family=family, detectable=detectable)
    languages = _languages(baseline, candidate)
    slices = {name: paired_compare({k: baseline.words[k] for k in ids}, {k: candidate.words[k] for k in ids}, **kw)
              for name, ids in slice_subsets(baseline, candidate).items()}
    if languages:  # never a figure pooled across languages: one comparison per language
        a, b = baseline.by_language(), candidate.by_language()
        return Comparison(baseline, candidate, None, None, policy, HallucinationComparison.of(baseline, candidate),
                          {lang: paired_compare(a.get(lang, {}), b.get(lang, {}), **kw) for lang in languages}, slices)
    return Comparison(baseline, candidate, paired_compare(baseline.words, candidate.words, **kw),
                      paired_compare(baseline.chars, candidate.chars, **kw), policy,
                      HallucinationComparison.of(baseline, candidate), slices=slices)


def slice_subsets(a: Side, b: Side) -> dict[str, list[str]]:
    """The scored utterances both sides have, by slice of the candidate's slice fields: each slice
    with at least ``slice_min`` of them ("WER accent=b" -> ids); a field with one slice adds none."""
    common = set(a.words) & set(b.words)
    found = {}
    for name, values in sorted(b.slices.items()):
        groups: dict[str, list[str]] = {}
        for uid in common:
            if values.get(uid) is not None:
                groups.setdefault(values[uid], []).append(uid)
        if len(groups) > 1:
            found.update({f"WER {name}={value}": sorted(ids) for value, ids in sorted(groups.items())
                          if len(ids) >= b.slice_min})
    return found


def _languages(a: Side, b: Side) -> list[str]:
    """The languages two sides have scored utterances in, when either has more than one (else [])."""
    languages = set(a.languages.values()) | set(b.languages.values())
    return sorted(languages) if len(languages) > 1 else []


def judge(comparisons: list[Comparison], policy: GatePolicy) -> list[Comparison]:
    """Apply the family-wise correction over every metric of every comparison; returns them."""
    apply_correction([t for c in comparisons for t in c.tests], policy)
    return comparisons


def family_size(pairs: list[tuple[Side, Side]], policy: GatePolicy) -> int:
    """The number of tests a gate over these (baseline, candidate) pairs judges: WER and CER for
    each pair (one figure per language instead across several languages), each slice large enough,
    and hallucinations."""
    return (sum((len(_languages(a, b)) or 2) + len(slice_subsets(a, b)) for a, b in pairs)
            + (len(pairs) if policy.hallucination else 0))


def pair_sides(run_a: dict, rows_a: dict, run_b: dict, rows_b: dict, model_a: str | None = None,
               model_b: str | None = None) -> list[tuple[Side, Side]]:
    """Pair evaluations of two stored runs: same model and dataset; or, with model_a and model_b,
    model_a of run A with model_b of run B on each dataset both have. Two different names are never
    paired unless asked (:func:`unpaired` says what could be)."""
    def sides(run, rows, model):
        label = f"run {run['id'][:8]}"
        identities = {m.get("name"): m.get("info") or {} for m in run.get("models", ())}
        environments = {(x.get("model"), x.get("dataset")): x.get("environment") for x in run.get("aggregates", ())}
        stored = {(x.get("model"), x.get("dataset")): (x.get("metrics") or {}).get("slices")
                  for x in run.get("aggregates", ()) if isinstance(x.get("metrics"), dict)}
        found = {}
        for (m, d), r in rows.items():
            if model is None or m == model:
                found[(m, d)] = side = Side.from_rows(label, m, d, r, run.get("cpu") or "", identities.get(m),
                                                      environments.get((m, d)))
                side.slices = stored_slices(stored.get((m, d)))
        return found

    sa, sb = sides(run_a, rows_a, model_a), sides(run_b, rows_b, model_b)
    if not (model_a or model_b):
        return [(sa[k], sb[k]) for k in sorted(set(sa) & set(sb))]
    return [(sa[(ma, d)], sb[(mb, d)]) for (ma, d) in sorted(sa) for (mb, db) in sorted(sb) if d == db]


def stored_slices(summaries) -> dict[str, dict[str, str]]:
    """{field: {utterance id: slice}} from an evaluation's recorded slice summaries (its aggregate's
    ``slices``: ``metrics.slices.FieldSlices.summary``), whatever shape an imported run gives them."""
    found: dict[str, dict[str, str]] = {}
    for f in summaries if isinstance(summaries, list) else ():
        if isinstance(f, dict) and isinstance(f.get("field"), str) and isinstance(f.get("slices"), list):
            found[f["field"]] = {str(uid): str(s.get("value")) for s in f["slices"] if isinstance(s, dict)
                                 for uid in (s.get("ids") if isinstance(s.get("ids"), list) else ())}
    return found


def unpaired(rows_a: dict, rows_b: dict) -> list[str]:
    """What two runs could be paired on if told: per dataset both have, the model names each has
    when no name is in both ("tiny.en in A, tiny-greedy in B on speech")."""
    found = []
    for dataset in sorted({d for _, d in rows_a} & {d for _, d in rows_b}):
        left, right = {m for m, d in rows_a if d == dataset}, {m for m, d in rows_b if d == dataset}
        if not left & right:
            found.append(f"{', '.join(sorted(left))} in the baseline and {', '.join(sorted(right))} in the candidate "
                         f"on {dataset}")
    return found
