"""The spoken-question pipeline, composed from three tasks: a TTS model speaks each ``spoken`` chat
prompt, an ASR model transcribes the audio, the chat model answers what was heard. Each stage is an
ordinary invocation of its task through the runner; what is kept here is where an answer was lost.
"""
from __future__ import annotations

from dataclasses import dataclass

from .chat import ChatItem, Prompt


@dataclass
class SpokenItem:
    prompt: Prompt
    heard: str = ""  # the question as the ASR model transcribed the synthesized audio
    question_wer: float | None = None
    typed: ChatItem | None = None
    spoken: ChatItem | None = None
    error: str = ""

    @property
    def stage(self) -> str:
        """Where the spoken pipeline lost the answer: 'ok', 'chat', 'speech (TTS+ASR)' or 'error'."""
        if self.error or self.spoken is None or self.spoken.error:
            return "error"
        if self.spoken.passed is not False:
            return "ok"
        if self.typed is not None and self.typed.passed is False:
            return "chat"  # wrong even when the question was typed
        return "speech (TTS+ASR)" if self.question_wer else "chat"


@dataclass
class SpokenEval:
    chat: str
    tts: str
    asr: str
    items: list[SpokenItem]

    @property
    def by_stage(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.stage] = counts.get(item.stage, 0) + 1
        return counts

    def rows(self) -> list[dict]:
        return [{"utterance_id": i.prompt.id, "kind": "spoken", "source": i.prompt.source, "reference": i.prompt.question,
                 "hypothesis": i.spoken.answer if i.spoken else "", "hypothesis_normalized": i.heard,
                 "error": i.error or None, "note": f"stage {i.stage}; heard {i.heard!r}; question WER "
                 f"{'-' if i.question_wer is None else format(i.question_wer, '.2f')}", "findings": []}
                for i in self.items]

    def summary(self) -> dict:
        return {"task": "spoken", "utterances": len(self.items), "by_stage": self.by_stage,
                "tts": self.tts, "asr": self.asr}

    def serialized(self) -> dict:
        """The pipeline's result in the form every sink reads (JSON types only)."""
        return {
            "chat": self.chat, "tts": self.tts, "asr": self.asr, "by_stage": self.by_stage,
            "items": [{"id": i.prompt.id, "question": i.prompt.question, "heard": i.heard,
                       "question_wer": i.question_wer, "typed_passed": i.typed.passed if i.typed else None,
                       "spoken_answer": i.spoken.answer if i.spoken else None,
                       "spoken_passed": i.spoken.passed if i.spoken else None, "stage": i.stage, "error": i.error}
                      for i in self.items],
        }

    def report(self) -> list[str]:
        return report_lines(self.serialized())


def report_lines(record: dict) -> list[str]:
    """The pipeline's lines (from its ``serialized()`` form): where each answer was lost."""
    stages = ", ".join(f"{stage} {n}" for stage, n in sorted(record["by_stage"].items()))
    lines = [f"spoken questions: {record['tts']} -> {record['asr']} -> {record['chat']}: "
             f"{len(record['items'])} prompts; {stages}"]
    verdict = {True: "pass", False: "fail", None: "-"}
    for i in record["items"]:
        wer = "-" if i["question_wer"] is None else f"{i['question_wer']:.2f}"
        lines.append(f"  {i['id']}: heard {i['heard']!r} (question WER {wer}); typed {verdict[i['typed_passed']]}, "
                     f"spoken {verdict[i['spoken_passed']]}; {i['stage']}" + (f": {i['error']}" if i["error"] else ""))
    return lines
