"""Chat evaluation: prompt set -> responses -> latency, answer checks, relevance, runaway output.

A prompt line: ``{"id", "prompt" or "messages", "expect": [...], "expect_all": [...], "forbid": [...],
"topic", "spoken"}``: an answer key checked on normalized words, never on substrings ("4" is not
found in "40", "earth" not in "earthquake"; both texts normalized by speechlab-basic, so list
"4" and "four" as aliases). ``expect``: accepted aliases, one must be in the answer;
``expect_all``: required facts, each a phrase or a list of its aliases, all must be; ``forbid``:
wrong facts (distractors), none may be (an answer placing us on "Kepler-41B" fails a key that
forbids "Kepler" even though it mentions Earth). ``topic`` (default: the question) is what
relevance compares the answer with.
Prompts marked ``spoken`` also run through the spoken-question pipeline (TTS -> ASR -> chat).
Runaway responses are found with the ASR repetition measures (compression ratio, n-gram loops).
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._dataset import display_path, json_lines
from .._text import bounded, unicode_safe
from .._types import InputError, Response, SpeechlabError
from ..metrics.hallucination import compression_ratio, max_consecutive_repeats
from ..metrics.normalize import get_normalizer
from ..metrics.stats import wilson
from .base import Task

RUNAWAY_COMPRESSION_RATIO = 2.4
# answer keys are matched after this normalization: lower case, punctuation removed, numbers as
# written (the English normalizer spells "40" as "4 0", in which "4" would be found)
KEY_NORMALIZER = "speechlab-basic"
RUNAWAY_NGRAM_REPEATS = 3


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple[dict, ...]
    expect: tuple[str, ...] = ()
    expect_all: tuple[tuple[str, ...], ...] = ()  # required facts, each a tuple of its aliases
    topic: str = ""
    spoken: bool = False
    source: str = ""
    forbid: tuple[str, ...] = ()

    @property
    def question(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m.get("role") == "user"), "")


@dataclass
class PromptSet:
    name: str
    prompts: list[Prompt]
    errors: list[InputError] = field(default_factory=list)


def load_prompts(path: str | Path, name: str | None = None) -> PromptSet:
    path = Path(path)
    if not path.is_file():
        raise SpeechlabError(f"chat prompt set {display_path(path)} not found")
    prompts = PromptSet(name or display_path(path), [])
    for where, entry in json_lines(path, prompts.errors):
        if not isinstance(entry, dict):
            prompts.errors.append(InputError(where, "expected a JSON object"))
            continue
        messages = entry.get("messages") or ([{"role": "user", "content": entry["prompt"]}] if "prompt" in entry else None)
        if messages is None:
            prompts.errors.append(InputError(where, 'needs "prompt" or "messages"'))
            continue
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages):
            prompts.errors.append(InputError(where, "messages must be {role, content} objects"))
            continue
        try:
            expect, forbid = _phrases(_list(entry, "expect"), "expect"), _phrases(_list(entry, "forbid"), "forbid")
            required = tuple(_phrases(f if isinstance(f, list) else [f], "expect_all") for f in _list(entry, "expect_all"))
        except ValueError as exc:
            prompts.errors.append(InputError(where, str(exc)))
            continue
        topic = entry.get("topic", "")
        number = where.rsplit(" ", 1)[-1]
        prompts.prompts.append(Prompt(str(entry.get("id") or f"line{number}"), tuple(messages), expect, required,
                                      topic if isinstance(topic, str) else "", bool(entry.get("spoken", False)),
                                      where, forbid))
    return prompts


def _list(entry: dict, key: str) -> list:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f'"{key}" must be a list, got {type(value).__name__}')
    return value


def _phrases(value: list, key: str) -> tuple[str, ...]:
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f'"{key}" must hold non-empty strings')
    return tuple(value)


def has_words(words: list[str], phrase: str, normalizer) -> bool:
    """Whether the normalized ``phrase`` occurs in ``words`` as whole, consecutive words."""
    wanted = normalizer(phrase).split()
    n = len(wanted)
    return bool(n) and any(words[i:i + n] == wanted for i in range(len(words) - n + 1))


def runaway(text: str, normalized: str) -> str | None:
    """Evidence that a response loops, or None."""
    ratio = compression_ratio(text)
    if len(text) > 80 and ratio > RUNAWAY_COMPRESSION_RATIO:
        return f"compression ratio {ratio:.2f} > {RUNAWAY_COMPRESSION_RATIO}"
    repeats = max_consecutive_repeats(normalized.split(), 6)
    gram, count = max(repeats.items(), key=lambda kv: (kv[1], len(kv[0])), default=((), 0))
    if count >= RUNAWAY_NGRAM_REPEATS and len(" ".join(gram)) > 3:
        return f"{' '.join(gram)!r} repeated {count} times in a row"
    return None


def answer_check(prompt: Prompt, normalized_answer: str, normalizer) -> tuple[bool | None, str]:
    """(passed, why not: what was missing or forbidden); None when the prompt has no answer key."""
    if not prompt.expect and not prompt.expect_all and not prompt.forbid:
        return None, ""
    words = normalized_answer.split()
    found = lambda s: has_words(words, s, normalizer)  # noqa: E731
    missing = [fact[0] if len(fact) == 1 else " or ".join(repr(a) for a in fact)
               for fact in prompt.expect_all if not any(found(a) for a in fact)]
    if prompt.expect and not any(found(s) for s in prompt.expect):
        missing.append(" or ".join(repr(s) for s in prompt.expect))
    wrong = [s for s in prompt.forbid if found(s)]
    why = ", ".join(missing) + ("; " if missing and wrong else "") + (
        "forbidden " + ", ".join(repr(s) for s in wrong) if wrong else "")
    return not missing and not wrong, why


@dataclass
class ChatItem:
    prompt: Prompt
    answer: str = ""
    tokens: int | None = None
    first_token_seconds: float | None = None
    seconds: float = 0.0
    passed: bool | None = None
    missing: str = ""
    relevance: float | None = None
    problems: list[str] = field(default_factory=list)  # empty, runaway
    error: InputError | None = None
    judged: bool | None = None  # the judge model's verdict (None: no judge, no key, or no verdict in its reply)
    judge_reply: str = ""
    judge_cached: bool = False  # the verdict came from the inference cache
    cached: bool = False  # the answer came from the inference cache (with the timing measured then)
    worker: str = ""  # the worker process or Ray actor that answered ("" in the session's own process)

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.seconds if self.tokens and self.seconds else None


@dataclass
class ChatEval:
    model: str
    prompts: str
    items: list[ChatItem]
    errors: list[InputError]
    relevance_judge: str | None
    model_info: dict[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None
    judge: str | None = None  # the chat model that graded the answers
    judge_info: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> list[ChatItem]:
        return [i for i in self.items if i.error is None]

    @property
    def pass_rate(self) -> float | None:
        checked = [i.passed for i in self.answered if i.passed is not None]
        return sum(checked) / len(checked) if checked else None

    def _median(self, values) -> float | None:
        values = sorted(v for v in values if v is not None)
        return values[len(values) // 2] if values else None

    @property
    def median_first_token_seconds(self) -> float | None:
        return self._median(i.first_token_seconds for i in self.answered)

    @property
    def tokens_per_second(self) -> float | None:
        tokens = sum(i.tokens or 0 for i in self.answered)
        seconds = sum(i.seconds for i in self.answered if i.tokens)
        return tokens / seconds if tokens and seconds else None

    @property
    def mean_relevance(self) -> float | None:
        values = [i.relevance for i in self.answered if i.relevance is not None]
        return sum(values) / len(values) if values else None

    @property
    def flagged(self) -> list[ChatItem]:
        return [i for i in self.answered if i.problems]

    def failures(self, min_relevance: float) -> list[str]:
        lines = []
        for i in self.answered:
            why = ([_failed(i.missing)] if i.passed is False else []) + i.problems + (
                [f"relevance {i.relevance:.2f} < {min_relevance}"]
                if i.relevance is not None and i.relevance < min_relevance else [])
            if why:
                lines.append(f"{i.prompt.id}: {'; '.join(why)}: answer {i.answer[:120]!r}")
        return lines

    def rows(self) -> list[dict]:
        """Each prompt as a row of the utterances table: the question as the reference, the answer as
        the hypothesis, what failed as the note, the problems as findings."""
        rows = []
        for i in self.items:
            why = ([_failed(i.missing)] if i.passed is False else []) + (
                [f"relevance {i.relevance:.2f}"] if i.relevance is not None else [])
            rows.append({
                "utterance_id": i.prompt.id, "kind": "chat", "source": i.prompt.source, "reference": i.prompt.question,
                "hypothesis": i.answer, "processing_seconds": i.seconds, "error": str(i.error) if i.error else None,
                "note": "; ".join([{True: "passed", False: "failed", None: "no answer key"}[i.passed], *why]),
                "findings": [{"kind": "chat", "span": i.answer[:200], "evidence": p} for p in i.problems],
            })
        return rows

    def summary(self) -> dict:
        checked = [i.passed for i in self.answered if i.passed is not None]
        return {"task": "chat", "model": self.model, "prompts": self.prompts,
                "utterances": len(self.items), "processed": len(self.answered),
                "errors": len(self.errors) + len(self.items) - len(self.answered),
                "pass_rate": self.pass_rate, "passed": sum(checked), "checked": len(checked),
                "pass_ci": wilson(sum(checked), len(checked)),
                "mean_relevance": self.mean_relevance, "relevance_judge": self.relevance_judge,
                "median_first_token_s": self.median_first_token_seconds,
                "tokens_per_second": self.tokens_per_second, "flagged": len(self.flagged),
                "hallucinated": len(self.flagged), "load_seconds": self.load_seconds,
                "cached": sum(i.cached for i in self.items), **self.judge_summary()}

    def judge_summary(self) -> dict:
        """The judge's pass rate with its interval, how often it agrees with the answer key, and how
        many replies held no verdict; its identity (weights included)."""
        if self.judge is None:
            return {"judge": None}
        asked = [i for i in self.answered if i.passed is not None]
        judged = [i for i in asked if i.judged is not None]
        agree = sum(i.judged == i.passed for i in judged)
        return {"judge": self.judge, "judge_weights": self.judge_info.get("source_weights_sha256") or self.judge_info.get("weights"),
                "judge_passed": sum(i.judged for i in judged), "judge_checked": len(judged),
                "judge_pass_rate": sum(i.judged for i in judged) / len(judged) if judged else None,
                "judge_pass_ci": wilson(sum(i.judged for i in judged), len(judged)),
                "judge_agreement": agree / len(judged) if judged else None, "judge_no_verdict": len(asked) - len(judged),
                "judge_cached": sum(i.judge_cached for i in judged)}

    def serialized(self) -> dict:
        """The evaluation in the form every sink reads (JSON types only)."""
        return {
            "summary": self.summary(), "model_info": json.loads(json.dumps(self.model_info, default=str)),
            "errors": [str(e) for e in self.errors], "failures": self.failures(0.0),
            "items": [{"id": i.prompt.id, "question": i.prompt.question, "answer": i.answer, "passed": i.passed,
                       "missing": i.missing, "relevance": i.relevance, "problems": i.problems, "tokens": i.tokens,
                       "first_token_s": i.first_token_seconds, "seconds": i.seconds,
                       "judged": i.judged, "judge_reply": i.judge_reply, "cached": i.cached, "worker": i.worker,
                       "error": str(i.error) if i.error else None} for i in self.items],
        }


def _failed(why: str) -> str:
    return why if why.startswith("forbidden") else f"missing {why}"


def score_chat(output, prompt: Prompt, normalizer) -> ChatItem:
    if output.error:
        return ChatItem(prompt, error=InputError(prompt.source, output.error, prompt.id))
    text = output.value.text.strip()
    normalized = normalizer(text)
    keys = get_normalizer(KEY_NORMALIZER)  # numbers stay as written: "40" is not "4 0"
    passed, missing = answer_check(prompt, keys(text), keys)
    problems = []
    if not normalized:
        problems.append("empty response")
    loop = runaway(text, normalized)
    if loop:
        problems.append(f"runaway: {loop}")
    return ChatItem(prompt, text, output.value.tokens, output.first_token_seconds, output.seconds,
                    passed, missing, None, problems)


JUDGE_INSTRUCTIONS = ("You grade answers to questions. Reply with one word, YES if the answer is correct "
                      "and NO if it is not.")


def judge_messages(prompt: Prompt, answer: str) -> list[dict]:
    """What a judge model is asked about one answer: the question, its answer key, the answer."""
    key = []
    if prompt.expect:
        key.append("A correct answer says: " + " or ".join(prompt.expect))
    for fact in prompt.expect_all:
        key.append("It must state: " + " or ".join(fact))
    if prompt.forbid:
        key.append("It must not state: " + "; ".join(prompt.forbid))
    return [{"role": "system", "content": JUDGE_INSTRUCTIONS},
            {"role": "user", "content": f"Question: {prompt.question}\n" + "\n".join(key)
             + f"\nAnswer to grade: {answer}\nIs the answer correct? YES or NO."}]


def parse_verdict(reply: str) -> bool | None:
    """YES/NO (also correct/incorrect, right/wrong, true/false) as the reply's first such word, a
    negated one ("not correct", "isn't right") read as NO; None when there is none."""
    words = re.findall(r"[a-z]+", reply.lower())[:30]
    for i, word in enumerate(words):
        negated = i > 0 and words[i - 1] in ("not", "t", "never")  # "isn't" splits as "isn", "t"
        if word in ("yes", "correct", "right", "true"):
            return not negated
        if word in ("no", "incorrect", "wrong", "false"):
            return False
    return None


def as_response(value: Any) -> Response:
    if isinstance(value, str):
        value = Response(value)
    if not isinstance(value, Response):
        raise TypeError(f"respond() must return a Response or str, got {type(value).__name__}")
    if not isinstance(value.text, str):
        raise TypeError(f"respond() returned a {type(value.text).__name__} as text")
    text, original = bounded(unicode_safe(value.text))
    return dataclasses.replace(value, text=text) if original or text != value.text else value


def _respond(instance: Any, messages: list) -> tuple[Response, float | None]:
    """Streams where the model can (the time to the first piece is measured), else one call."""
    stream = getattr(instance, "stream", None)
    if not callable(stream):
        return as_response(instance.respond(messages)), None
    pieces, first = [], None
    start = time.perf_counter()
    for piece in stream(messages):
        if first is None and piece:
            first = time.perf_counter() - start
        pieces.append(piece if isinstance(piece, str) else str(piece))
    return as_response(Response("".join(pieces), len(pieces))), first


def _embed(instance: Any, texts: list[str]) -> tuple[Any, None]:
    return instance.embed(list(texts)), None


def encode_response(response: Response) -> dict:
    return {"text": response.text, "tokens": response.tokens}


def decode_response(record: dict) -> Response:
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise ValueError("not a cached reply")
    tokens = record.get("tokens")
    return Response(record["text"], tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None)


CHAT = Task("chat", ("respond", "stream"), "ChatModel: respond(messages) -> Response | str, or stream(messages)",
            _respond, load=load_prompts, score=score_chat, summarize=ChatEval,
            request=lambda prompt: [dict(m) for m in prompt.messages], encode=encode_response,
            decode=decode_response, item_kind="prompt", set_kind="chat prompt set")
EMBEDDING = Task("embedding", ("embed",), "embed(texts) -> vectors", _embed)
