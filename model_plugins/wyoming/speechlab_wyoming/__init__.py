"""A running speech-to-text service on the Wyoming protocol (Home Assistant's voice pipeline),
evaluated by pytest-speechlab like any model (registered exactly as a third party would).

Model ``wyoming/asr`` (declare a variant with the server's ``uri``, ``tcp://host:port``): each
utterance is one connection: ``transcribe`` (with the language), ``audio-start``, the audio as
16-bit PCM ``audio-chunk`` events of ``chunk_ms`` (default 100 ms), ``audio-stop``, then the
events the server sends until the ``transcript``: ``transcript-chunk`` pieces are streamed
partials (the runner times the first), an ``error`` event fails the utterance with its text.

``pacing = "realtime"`` sends each chunk when it would have been spoken, as a microphone does: the
figure that matters is then the time from the end of the audio to the transcript (its end-to-end
time, and so its RTF, includes the audio's own length: RTF >= 1 by construction). ``pacing =
"fast"`` (the default, so that RTF means what it means for any model) sends it as fast as the
connection takes it. The pacing achieved is measured (seconds taken to send / audio seconds). Other parameters: ``language``, ``timeout``
(seconds per utterance after the audio is sent, default 60), ``connect_timeout`` (5), ``retries``
(refused connections retried with back-off, default 2), ``concurrency`` (connections at once).

The server's ``describe`` answer (its ASR program and models, their versions, whether it
streams transcripts) is recorded and is part of the cache key with the URI.
"""
from __future__ import annotations

import asyncio
import json
import queue
import threading
from importlib.metadata import version
from typing import Any, Iterator
from urllib.parse import urlsplit

from pytest_speechlab import AudioSent, Fault, Partial, Transcript, hookimpl

SAMPLE_RATE = 16000
COMMON = {"pacing": "fast", "chunk_ms": 100, "timeout": 60.0, "connect_timeout": 5.0, "retries": 2,
          "concurrency": 1}
KNOWN = {"uri", "language", *COMMON}
MAX_EVENTS = 10_000
MAX_EVENT_BYTES = 1 << 20  # an event's data or payload this client reads (transcripts, errors: no audio)


class ServiceError(Exception):
    """A failed utterance: the message names the server and the cause."""


async def read_event(reader: asyncio.StreamReader, uri: str) -> tuple[str, dict] | None:
    """One event from the server, (type, data), or None when it closed the connection. Bounded: the
    header line by the stream's limit (64 KiB), the data and payload by MAX_EVENT_BYTES, whatever
    the header declares; an event that is not Wyoming says so (the wyoming library's reader returns
    None for it, as if the server had closed the connection, and reads any declared length)."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's LimitOverrunError: no newline within the limit
        raise ServiceError(f"{uri} sent an event header longer than 64 KiB without a newline") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        raise ServiceError(f"{uri} sent an event that is not JSON (it starts {line[:60]!r})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ServiceError(f"{uri} sent an event without a type (it starts {line[:60]!r})")
    data = header.get("data") if isinstance(header.get("data"), dict) else {}
    for key in ("data_length", "payload_length"):
        length = header.get(key)
        if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                                   or not 0 <= length <= MAX_EVENT_BYTES):
            raise ServiceError(f"{uri} sent a {header['type']!r} event declaring {key} {length!r}: more than the "
                               f"{MAX_EVENT_BYTES:,} bytes this client reads of an event, or not a length")
    if header.get("data_length"):
        try:
            extra = json.loads(await reader.readexactly(header["data_length"]))
        except ValueError:
            raise ServiceError(f"{uri} sent a {header['type']!r} event whose data is not JSON") from None
        data.update(extra if isinstance(extra, dict) else {})
    if header.get("payload_length"):
        await reader.readexactly(header["payload_length"])  # no event this client reads carries one it uses
    return header["type"], data


def _check(params: dict, name: str) -> dict:
    unknown = sorted(set(params) - KNOWN)
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
    uri = params.get("uri")
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or parts.scheme != "tcp" or not parts.hostname or not parts.port:
        raise ValueError(f"{name} needs uri = \"tcp://host:port\" (the Wyoming server) in its variant, got {uri!r}")
    if params.get("pacing", "fast") not in ("realtime", "fast"):
        raise ValueError(f"{name}: pacing must be \"realtime\" or \"fast\", got {params.get('pacing')!r}")
    for key in ("chunk_ms", "timeout", "connect_timeout", "retries"):
        value = params.get(key, COMMON[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < (0 if key == "retries" else 0.001):
            raise ValueError(f"{name}: {key} must be a positive number, got {value!r}")
    return {**COMMON, **params, "host": parts.hostname, "port": parts.port}


class WyomingASR:
    sample_rate = SAMPLE_RATE

    def __init__(self, params: dict, name: str = "wyoming/asr") -> None:
        from wyoming.client import AsyncTcpClient  # only when the model is built

        self.name = name
        self.settings = _check(params, name)
        self.client_type = AsyncTcpClient
        self.language = params.get("language")
        if self.language == "dataset":
            self.language = None
        self.reported = asyncio.run(self._describe())

    def _client(self):
        s = self.settings
        return self.client_type(s["host"], s["port"], connect_timeout=s["connect_timeout"])

    async def _describe(self) -> dict:
        from wyoming.event import Event
        from wyoming.info import Describe, Info

        client = self._client()
        try:
            await client.connect()
        except OSError as exc:
            raise ConnectionError(f"{self.name}: the Wyoming server at {self.settings['uri']} does not answer "
                                  f"(is it running?): {exc}") from None
        try:
            await client.write_event(Describe().event())
            for _ in range(20):
                event = await asyncio.wait_for(read_event(client._reader, self.settings["uri"]),
                                               self.settings["connect_timeout"])
                if event is None:
                    break
                if Info.is_type(event[0]):
                    info = Info.from_event(Event(type=event[0], data=event[1]))
                    return {"asr": [{"name": str(p.name)[:100], "version": str(p.version)[:40],
                                     "streaming": bool(getattr(p, "supports_transcript_streaming", False)),
                                     "models": [f"{str(m.name)[:100]} {str(m.version)[:40]}" for m in p.models[:20]]}
                                    for p in info.asr[:5]]}
        except (asyncio.TimeoutError, OSError, ValueError, KeyError, TypeError, AttributeError, ServiceError):
            pass  # best effort: the identity then says the server did not describe itself
        finally:
            await client.disconnect()
        return {"asr": "the server did not describe itself"}

    def transcribe(self, audio, language: str | None = None) -> Transcript:
        *_, final = self.transcribe_events(audio, language)
        return final

    def transcribe_events(self, audio, language: str | None = None) -> Iterator[Any]:
        """The conversation runs on its own event loop in a thread; its events arrive here, in
        order, as they happen (so that the runner's clock sees them when they do)."""
        events: queue.Queue = queue.Queue()
        worker = threading.Thread(target=lambda: asyncio.run(self._conversation(audio, language, events.put)),
                                  daemon=True, name="speechlab-wyoming")
        worker.start()
        while True:
            item = events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Transcript):
                return

    async def _connect(self, put) -> Any:
        s = self.settings
        for attempt in range(int(s["retries"]) + 1):
            client = self._client()
            try:
                await client.connect()
                return client
            except asyncio.TimeoutError:
                raise ServiceError(f"connecting to {s['uri']} timed out after {s['connect_timeout']:g} s") from None
            except OSError as exc:
                if attempt == s["retries"]:
                    raise ServiceError(f"connection to {s['uri']} failed {attempt + 1} time(s): {exc}") from None
                put(Fault("connection", str(exc)[:200]))
                await asyncio.sleep(min(4.0, 0.25 * 2 ** attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _conversation(self, audio, language: str | None, put) -> None:
        from wyoming.asr import Transcribe
        from wyoming.audio import AudioChunk, AudioStart, AudioStop

        s = self.settings
        try:
            client = await self._connect(put)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            put(exc)
            return
        try:
            import numpy as np

            pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            step = int(SAMPLE_RATE * s["chunk_ms"] / 1000) * 2
            fmt = {"rate": SAMPLE_RATE, "width": 2, "channels": 1}
            await client.write_event(Transcribe(language=language or self.language).event())
            await client.write_event(AudioStart(**fmt).event())
            reader = asyncio.create_task(self._read(client, put))
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(0, len(pcm), step):
                if s["pacing"] == "realtime":  # each chunk when it has been spoken
                    await asyncio.sleep(max(0.0, start + (i + step) / 2 / SAMPLE_RATE - loop.time()))
                if reader.done():  # the server answered (or failed) before the audio ended
                    break
                await client.write_event(AudioChunk(audio=pcm[i:i + step], **fmt).event())
            if not reader.done():
                await client.write_event(AudioStop().event())
                put(AudioSent())
            try:
                put(await asyncio.wait_for(reader, s["timeout"]))
            except asyncio.TimeoutError:
                raise ServiceError(f"no transcript from {s['uri']} {s['timeout']:g} s after the end of the audio "
                                   "(timeout)") from None
        except BaseException as exc:  # noqa: BLE001
            put(exc if isinstance(exc, (ServiceError, TypeError, ValueError)) else
                ServiceError(f"the connection to {s['uri']} failed: {type(exc).__name__}: {exc}"))
        finally:
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001
                pass

    async def _read(self, client, put) -> Transcript:
        from wyoming.asr import Transcript as WyTranscript
        from wyoming.asr import TranscriptChunk
        from wyoming.error import Error

        for _ in range(MAX_EVENTS):
            event = await read_event(client._reader, self.settings["uri"])  # the connected client's stream
            if event is None:
                raise ServiceError(f"{self.settings['uri']} closed the connection before sending a transcript")
            kind, data = event
            if WyTranscript.is_type(kind):
                text = data.get("text")
                if not isinstance(text, str):
                    raise ServiceError(f"the transcript event's text is {type(text).__name__}, not a string")
                language = data.get("language") if isinstance(data.get("language"), str) else None
                return Transcript(text.strip(), (), language, {"protocol": "wyoming"})
            if TranscriptChunk.is_type(kind) and isinstance(data.get("text"), str):
                put(Partial(data["text"]))
            elif Error.is_type(kind):
                raise ServiceError(f"the server sent an error: {str(data.get('text'))[:300]!r} (code {data.get('code')!r})")
        raise ServiceError(f"more than {MAX_EVENTS:,} events without a transcript")

    def info(self) -> dict:
        s = self.settings
        return {
            "backend_version": f"speechlab-wyoming {version('speechlab-wyoming')}, wyoming {version('wyoming')}",
            "device": "service", "threads": None,
            "service": {"url": s["uri"], "protocol": "wyoming", "reported": self.reported},
            "decode": {"language": self.language, "pacing": s["pacing"], "chunk_ms": s["chunk_ms"]},
            "input": "16-bit PCM at 16 kHz, mono",
        }


def load_asr(params: dict) -> WyomingASR:
    return WyomingASR(params)


@hookimpl
def speechlab_register_models(register):
    register("wyoming/asr", task="asr", load=load_asr, backend="wyoming (TCP)", service=True,
             weights="whatever the server runs (its describe answer is recorded: info()['service'])",
             params=dict(COMMON),
             description="a Wyoming speech-to-text server; declare a variant with uri = \"tcp://host:port\"")
