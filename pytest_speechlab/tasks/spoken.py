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

    def report(self) -> list[str]:
        stages = ", ".join(f"{stage} {n}" for stage, n in sorted(self.by_stage.items()))
        lines = [f"spoken questions: {self.tts} -> {self.asr} -> {self.chat}: {len(self.items)} prompts; {stages}"]
        for i in self.items:
            typed = "-" if i.typed is None else {True: "pass", False: "fail", None: "-"}[i.typed.passed]
            spoken = "-" if i.spoken is None else {True: "pass", False: "fail", None: "-"}[i.spoken.passed]
            wer = "-" if i.question_wer is None else f"{i.question_wer:.2f}"
            lines.append(f"  {i.prompt.id}: heard {i.heard!r} (question WER {wer}); typed {typed}, spoken {spoken}; "
                         f"{i.stage}" + (f": {i.error}" if i.error else ""))
        return lines

    def rows(self) -> list[dict]:
        return [{"utterance_id": i.prompt.id, "kind": "spoken", "source": i.prompt.source, "reference": i.prompt.question,
                 "hypothesis": i.spoken.answer if i.spoken else "", "hypothesis_normalized": i.heard,
                 "error": i.error or None, "note": f"stage {i.stage}; heard {i.heard!r}; question WER "
                 f"{'-' if i.question_wer is None else format(i.question_wer, '.2f')}", "findings": []}
                for i in self.items]

    def summary(self) -> dict:
        return {"task": "spoken", "utterances": len(self.items), "by_stage": self.by_stage,
                "tts": self.tts, "asr": self.asr}
