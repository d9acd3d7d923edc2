"""A stand-in for liquid-audio with the API surface the LFM2.5-Audio adapter uses, for tests on a
Python (3.11) where the real package cannot be installed. It keeps the real package's traps: a str
given to from_pretrained is a hub repository id (refused here: nothing may download), generation
yields 1-entry tensors for text and 8-entry tensors for audio codes.
"""
from __future__ import annotations

import enum
from pathlib import Path

import torch

CALLS: list[tuple] = []  # what the adapter did, for the tests to inspect
ASR_TRANSCRIPT = "Hello from the stand-in."


class LFMModality(enum.IntEnum):
    TEXT = 1
    AUDIO_IN = 2
    AUDIO_OUT = 3


def _check_local(path, what):
    if not isinstance(path, Path):
        raise RuntimeError(f"{what}.from_pretrained({path!r}): a str is a hub repository id (would download)")
    if not path.is_dir():
        raise FileNotFoundError(path)


class _Text:
    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token) -> str:
        return "".join(chr(int(t)) for t in torch.as_tensor(token).flatten())


class LFM2AudioProcessor:
    def __init__(self, path: Path, device: str) -> None:
        self.path, self.device, self.text = path, device, _Text()

    @classmethod
    def from_pretrained(cls, repo_or_path, device="cuda"):
        _check_local(repo_or_path, "LFM2AudioProcessor")
        CALLS.append(("processor", repo_or_path, device))
        return cls(repo_or_path, device)

    def eval(self):
        return self


class ChatState:
    """Turns as the real class builds them; ``**chat`` passes them to generation."""

    def __init__(self, processor: LFM2AudioProcessor) -> None:
        self.processor, self.turns, self._open = processor, [], None

    def new_turn(self, role: str) -> None:
        assert self._open is None, "previous turn not ended"
        self._open = {"role": role, "text": "", "audio": []}
        self.turns.append(self._open)

    def add_text(self, text: str) -> None:
        self._open["text"] += text

    def add_audio(self, wav: torch.Tensor, sampling_rate: int) -> None:
        assert wav.ndim == 2 and wav.shape[0] == 1, "audio must be (1, samples)"
        self._open["audio"].append((wav.shape[1], sampling_rate))

    def end_turn(self) -> None:
        self._open = None

    def keys(self):
        return ["turns"]

    def __getitem__(self, key):
        return {"turns": self.turns}[key]


class LFM2AudioModel:
    def __init__(self, path: Path, dtype, device: str) -> None:
        self.path, self.dtype, self.device = path, dtype, device

    @classmethod
    def from_pretrained(cls, repo_or_path, dtype=torch.bfloat16, device="cuda"):
        _check_local(repo_or_path, "LFM2AudioModel")
        CALLS.append(("model", repo_or_path, dtype, device))
        return cls(repo_or_path, dtype, device)

    def eval(self):
        return self

    def generate_sequential(self, *, turns, max_new_tokens=512, **_):
        CALLS.append(("generate_sequential", [dict(t) for t in turns], max_new_tokens))
        system = turns[0]["text"]
        if system == "Perform ASR.":
            reply = ASR_TRANSCRIPT
        else:
            reply = f"You said: {turns[-2]['text']}"
        for i, ch in enumerate(reply[:max_new_tokens]):
            yield torch.tensor([ord(ch)])
            if i == 3:
                yield torch.zeros(8, dtype=torch.long)  # an audio frame: the adapter skips it
