"""A small Wyoming speech-to-text server for the tests that streams: faster-whisper tiny.en (the
packaged weights) decodes the audio after audio-stop and each segment goes out as a
transcript-chunk as soon as it is decoded, then the transcript (wyoming-faster-whisper sends no
chunks, so the partial path needs this). Bound to 127.0.0.1.

    python tests/stand_ins/wyoming_streaming.py --port 10301
"""
from __future__ import annotations

import argparse
import asyncio

import numpy as np
from faster_whisper import WhisperModel
from speechlab_faster_whisper import tiny_en_path
from wyoming.asr import Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStop
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler, AsyncTcpServer

MODEL = WhisperModel(str(tiny_en_path()), device="cpu", compute_type="int8", cpu_threads=2)
ATTRIBUTION = Attribution(name="pytest-speechlab tests", url="https://example.invalid")
INFO = Info(asr=[AsrProgram(name="speechlab-streaming-stand-in", description="tests", attribution=ATTRIBUTION,
                            installed=True, version="1.0", supports_transcript_streaming=True,
                            models=[AsrModel(name="tiny.en", description="tiny.en", attribution=ATTRIBUTION,
                                             installed=True, version="1", languages=["en"])])])


class Handler(AsyncEventHandler):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.pcm = bytearray()

    async def handle_event(self, event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(INFO.event())
        elif AudioChunk.is_type(event.type):
            self.pcm += AudioChunk.from_event(event).audio
        elif AudioStop.is_type(event.type):
            audio = np.frombuffer(bytes(self.pcm), dtype="<i2").astype(np.float32) / 32768.0
            segments, _ = MODEL.transcribe(audio, beam_size=5, language="en")
            texts = []
            for segment in segments:  # decoded lazily: each one sent as soon as it exists
                texts.append(segment.text)
                await self.write_event(TranscriptChunk(text=segment.text).event())
            await self.write_event(Transcript(text="".join(texts).strip()).event())
            return False
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    asyncio.run(AsyncTcpServer("127.0.0.1", port).run(Handler))


if __name__ == "__main__":
    main()
