"""Liquid AI LFM2.5-Audio for pytest-speechlab: ASR and chat through the ``liquid-audio`` package.

Models (both need ``model_path``: a local folder holding the LFM2.5-Audio-1.5B checkpoint, which the
user downloads; nothing is fetched at run time):
- ``lfm2.5-audio/asr`` (task asr): sequential generation with the system prompt "Perform ASR.".
- ``lfm2.5-audio/chat`` (task chat): text in, text out, streamed token by token.

liquid-audio reads a local folder only when it is given a ``pathlib.Path`` (a str is taken as a hub
repository id), so the path is always passed as a Path. Parameters: ``model_path``, ``device``
(``cuda`` by default: liquid-audio's audio detokenizer calls ``.cuda()``; ASR and text chat do not
use it), ``dtype`` (bfloat16), ``max_new_tokens`` (512), ``system_prompt`` (chat; default "Respond
with text only."), ``hash_weights`` (false: the checkpoint is ~3 GB; true records its sha256).
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pytest_speechlab import Response, Transcript, hookimpl, weights_digest

ASR_PROMPT = "Perform ASR."
CHAT_PROMPT = "Respond with text only."
DEFAULTS = {"device": "cuda", "dtype": "bfloat16", "max_new_tokens": 512}
SAMPLE_RATE = 16000


class LFMAudio:
    """The shared part: loading, one chat state per call, text tokens out of generate_sequential."""

    def __init__(self, params: dict) -> None:
        import torch
        from liquid_audio import LFM2AudioModel, LFM2AudioProcessor  # heavy: only when the model is built

        params = dict(params)
        if not params.get("model_path"):
            raise ValueError("LFM2.5-Audio needs model_path: a local folder with the LFM2.5-Audio-1.5B checkpoint "
                             '(declare a variant: [tool.speechlab.models.lfm] model = "lfm2.5-audio/asr" '
                             'model_path = "/models/LFM2.5-Audio-1.5B")')
        self.path = Path(params.pop("model_path")).expanduser()
        if not self.path.is_dir():
            raise FileNotFoundError(f"LFM2.5-Audio model_path {self.path} is not a folder")
        self.device = params.pop("device", "cuda")
        self.dtype = params.pop("dtype", "bfloat16")
        self.max_new_tokens = int(params.pop("max_new_tokens", 512))
        self.hash_weights = bool(params.pop("hash_weights", False))
        self.params = params
        self.processor = LFM2AudioProcessor.from_pretrained(self.path, device=self.device).eval()
        self.model = LFM2AudioModel.from_pretrained(self.path, dtype=getattr(torch, self.dtype),
                                                    device=self.device).eval()

    def _chat(self, system: str):
        from liquid_audio import ChatState

        chat = ChatState(self.processor)
        chat.new_turn("system")
        chat.add_text(system)
        chat.end_turn()
        return chat

    def _text_pieces(self, chat):
        import torch

        chat.new_turn("assistant")
        with torch.inference_mode():
            for token in self.model.generate_sequential(**chat, max_new_tokens=self.max_new_tokens):
                if token.numel() == 1:  # text; audio tokens carry 8 codebooks
                    yield self.processor.text.decode(token)

    def info(self) -> dict:
        try:
            backend = f"liquid-audio {version('liquid-audio')}"
        except PackageNotFoundError:
            backend = "liquid-audio (not installed as a distribution)"
        info = {"backend_version": backend, "device": self.device, "dtype": self.dtype,
                "weights_path": str(self.path), "decode": {"max_new_tokens": self.max_new_tokens, **self.params}}
        if self.hash_weights:
            info["weights_sha256"] = weights_digest(self.path)
        return info


class LFMAudioASR(LFMAudio):
    sample_rate = SAMPLE_RATE

    def transcribe(self, audio) -> Transcript:
        import torch

        chat = self._chat(ASR_PROMPT)
        chat.new_turn("user")
        chat.add_audio(torch.from_numpy(audio).unsqueeze(0), SAMPLE_RATE)
        chat.end_turn()
        return Transcript("".join(self._text_pieces(chat)).strip())


class LFMAudioChat(LFMAudio):
    def stream(self, messages):
        system = next((m["content"] for m in messages if m["role"] == "system"),
                      self.params.get("system_prompt", CHAT_PROMPT))
        chat = self._chat(system)
        for message in messages:
            if message["role"] == "system":
                continue
            chat.new_turn(message["role"])
            chat.add_text(message["content"])
            chat.end_turn()
        yield from self._text_pieces(chat)

    def respond(self, messages) -> Response:
        pieces = list(self.stream(messages))
        return Response("".join(pieces).strip(), len(pieces))


@hookimpl
def speechlab_register_models(register):
    common = dict(backend="liquid-audio", weights="model_path parameter: a local LFM2.5-Audio-1.5B folder")
    register("lfm2.5-audio/asr", task="asr", load=LFMAudioASR, params=dict(DEFAULTS),
             description="LFM2.5-Audio-1.5B speech-to-text (Python >= 3.12, weights you provide)", **common)
    register("lfm2.5-audio/chat", task="chat", load=LFMAudioChat, params=dict(DEFAULTS),
             description="LFM2.5-Audio-1.5B text chat (Python >= 3.12, weights you provide)", **common)
