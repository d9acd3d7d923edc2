"""Chat evaluation and the spoken-question pipeline. Every model call goes through the runner's one
loop (``Engine.run_items``: the session's executor, the inference cache): the chat model's answers,
the judge model's verdicts, and for the spoken pipeline the TTS model's questions and the chat
model's answers to what the ASR judge heard."""
from __future__ import annotations

import warnings

from ..._machine import environment
from ..._types import SpeechlabError
from ...metrics.normalize import get_normalizer
from ...metrics.wer import score_words
from ...tasks import CHAT
from ...tasks.chat import ChatEval, Prompt, judge_messages, parse_verdict
from ...tasks.spoken import SpokenEval, SpokenItem
from ...tasks.tts import TextItem
from ..runner import ModelLoadError
from .base import Feature

NO_TTS = ("no TTS model for the spoken-question pipeline: select one "
          "(--speechlab-model piper/en_US-joe-medium) or set [tool.speechlab.chat] tts")


class ChatFeature(Feature):
    name = "chat"

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.evals: dict[tuple, object] = {}  # (model, prompt set ref) -> ChatEval; ("spoken", ...) -> SpokenEval or a reason

    def prompt_set(self, ref: str):
        return self.engine.load_set(CHAT, ref)

    def relevance_judge(self):
        """The embedding model for chat relevance, or None when it is not installed (said in the summary)."""
        engine = self.engine
        name = engine.settings.chat.relevance_judge
        if name not in engine.registry.models:
            return None
        try:
            return engine.pool.get(engine.registry.model(name))
        except ModelLoadError as exc:
            warnings.warn(f"chat relevance not measured: {exc}", stacklevel=2)
            return None

    def evaluate(self, loaded, ref: str):
        key = (loaded.name, ref)  # the prompt set is named by its reference
        if key in self.evals:
            return self.evals[key]
        engine, prompts = self.engine, self.prompt_set(ref)
        normalizer = get_normalizer(engine.settings.normalizer)
        calls, _ = engine.run_items(loaded, prompts.prompts, f"{loaded.name} x {prompts.name}")
        items = [self._scored(call, normalizer) for call in calls]
        judge = self.relevance_judge()
        answered = [i for i in items if i.error is None and i.answer]
        if judge is not None and answered:
            import numpy as np

            questions = engine.runner.embed(judge, [i.prompt.topic or i.prompt.question for i in answered])
            answers = engine.runner.embed(judge, [i.answer for i in answered]) if not questions.error else questions
            if error := questions.error or answers.error:
                warnings.warn(f"chat relevance not measured: {error}", stacklevel=2)
                judge = None
            for item, q, a in zip(answered, questions.value if judge else (), answers.value if judge else ()):
                item.relevance = float(np.dot(q, a) / (np.linalg.norm(q) * np.linalg.norm(a) or 1.0))
        grader = self.grade_answers(items)
        self.evals[key] = CHAT.summarize(loaded.name, prompts.name, items, prompts.errors,
                                         judge.name if judge else None, loaded.info, loaded.load_seconds,
                                         grader.name if grader else None, grader.info if grader else {})
        self._record(loaded, prompts.name, self.evals[key])
        return self.evals[key]

    @staticmethod
    def _scored(call, normalizer):
        item = CHAT.score(call.invocation, call.item, normalizer)
        item.cached, item.worker = call.cached is not None, call.worker
        return item

    def grade_answers(self, items):
        """[tool.speechlab.chat] judge (a registered chat model) grades each keyed answer: its reply
        and verdict kept on the item, the reply cached like any output (keyed by the judge's
        identity and the exact request). Returns the judge, or None without one."""
        engine = self.engine
        name = engine.settings.chat.judge
        if name is None:
            return None
        judge = engine.pool.get(engine.registry.model(name))
        if judge.spec.task != "chat":
            raise SpeechlabError(f"[tool.speechlab.chat] judge {name!r} is a {judge.spec.task} model, not a chat model")
        graded = [item for item in items if item.error is None and item.passed is not None]
        requests = [Prompt(item.prompt.id, tuple(judge_messages(item.prompt, item.answer)), source=item.prompt.source)
                    for item in graded]
        calls, _ = engine.run_items(judge, requests, f"{judge.name} grading {len(requests)} answers")
        for item, call in zip(graded, calls):
            if call.invocation.error:
                item.judge_reply = f"(judge failed: {call.invocation.error})"
                continue
            item.judge_reply, item.judge_cached = call.invocation.value.text, call.cached is not None
            item.judged = parse_verdict(item.judge_reply)
        return judge

    def spoken(self, loaded, ref: str):
        """TTS speaks each ``spoken`` prompt, the ASR judge transcribes it, the chat model answers."""
        key = ("spoken", loaded.name, ref)
        if key in self.evals:
            return self.evals[key]
        engine = self.engine
        tts_name = engine.settings.chat.tts or next(iter(engine.selected_models("tts")), None)
        if tts_name is None:
            self.evals[key] = NO_TTS
            return NO_TTS
        tts, asr = engine.pool.get(engine.registry.model(tts_name)), engine.tts.judge()
        normalizer = get_normalizer(engine.settings.normalizer)
        items = [SpokenItem(typed.prompt, typed=typed) for typed in self.evaluate(loaded, ref).items
                 if typed.prompt.spoken]  # the same prompts, answered from text
        spoken, _ = engine.run_items(tts, [TextItem(i.prompt.id, i.prompt.question, source=i.prompt.source)
                                           for i in items], f"{tts.name} speaking {len(items)} questions")
        heard = []
        for item, call in zip(items, spoken):
            if call.invocation.error:
                item.error = call.invocation.error
                continue
            audio = call.invocation.value
            out = engine.runner.transcribe_audio(asr, item.prompt.id, audio.samples, audio.sample_rate)
            if out.error is not None or out.transcript is None:
                item.error = f"ASR {asr.name}: {out.error.message if out.error else 'no transcript'}"
                continue
            item.heard = out.transcript.text.strip()
            words, _ = score_words(normalizer(item.prompt.question), normalizer(item.heard))
            item.question_wer = words.rate
            heard.append(item)
        asked = [Prompt(f"{i.prompt.id}", (*i.prompt.messages[:-1], {"role": "user", "content": i.heard}),
                        i.prompt.expect, i.prompt.expect_all, i.prompt.topic, True, i.prompt.source, i.prompt.forbid)
                 for i in heard]
        answers, _ = engine.run_items(loaded, asked, f"{loaded.name} answering {len(asked)} heard questions")
        for item, call in zip(heard, answers):
            item.spoken = self._scored(call, normalizer)
            item.spoken.prompt = item.prompt
        self.evals[key] = SpokenEval(loaded.name, tts.name, asr.name, items)
        self._record(loaded, f"{ref} (spoken: {tts.name} -> {asr.name})", self.evals[key])
        return self.evals[key]

    def _record(self, loaded, name: str, evaluation) -> None:
        """Chat and spoken-pipeline results go to the results database like ASR and TTS results."""
        engine = self.engine
        engine.recorder.model(loaded.info, loaded.load_seconds)
        engine.recorder.utterances(loaded.name, name, evaluation.rows())
        engine.recorder.aggregate(loaded.name, name, evaluation.summary(), environment(loaded.info))

    def reports(self) -> tuple[list, list]:
        """The chat evaluations and spoken-question pipelines of this session (reasons left out)."""
        evals = self.evals.values()
        return [e for e in evals if isinstance(e, ChatEval)], [e for e in evals if isinstance(e, SpokenEval)]

    def evaluations(self) -> list:
        return [e for e in self.evals.values() if not isinstance(e, str)]

    def serialized(self) -> dict:
        chats, spoken = self.reports()
        return {"chat": [c.serialized() for c in chats], "spoken": [s.serialized() for s in spoken]}
