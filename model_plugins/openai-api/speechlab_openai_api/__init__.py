"""A running service behind the OpenAI-compatible audio API, evaluated by pytest-speechlab like
any model (registered exactly as a third-party plugin would be).

Models (declare a variant with the service's ``base_url``; nothing here has a default service):
- ``openai-api/asr``: ``POST {base_url}/v1/audio/transcriptions`` (multipart ``file``, the model
  field, ``language``, ``temperature``, ``response_format``). ``verbose_json`` is asked for, so
  that segments and their scores reach the hallucination detectors; a service that refuses it
  (HTTP 400/422 naming the format) is asked for ``json``, then ``text``, and the format used is
  recorded. ``stream = true`` reads the server-sent events (``transcript.text.delta`` /
  ``transcript.text.done``): the runner times the first partial.
- ``openai-api/tts``: ``POST {base_url}/v1/audio/speech`` (JSON ``model``, ``input``, ``voice``,
  ``response_format = "wav"``), evaluated by the TTS round-trip suite.

Parameters: ``base_url``; ``served_model`` (the served model name; omitted when empty) and ``model_field``
(the form field that carries it: ``model`` for OpenAI, ``model_name`` for faster-whisper-server);
``language``, ``temperature``, ``response_format``, ``stream``; ``form`` (a table of extra form
fields, or for TTS extra JSON fields); ``voice`` (TTS); ``timeout`` (seconds a request may take in all,
its headers and a streamed response included, default 60; each request has its own connection) and ``connect_timeout`` (5); ``retries`` (how many times an HTTP 429 or 5xx, or a refused
connection, is retried with exponential back-off, default 3; ``Retry-After`` is honoured up to
``max_backoff`` seconds, default 8); ``concurrency`` (requests in flight at once, default 1);
``max_response_mb`` (a bigger response is an error, default 4); ``api_key_env``: the name of the
environment variable holding the API key, sent as ``Authorization: Bearer``. The key itself is
never a parameter, so it never reaches the database, the reports, the run file or the cache key.

The service's identity (``info()['service']``: the URL, the served model name, what the service
reports of itself: its OpenAPI title and version, ``/v1/models``, version headers) is part of the
cache key, with the URL and served model name: a changed service misses the cache.
"""
from __future__ import annotations

import io
import json
import os
import random
import re
import socket
import threading
import time
from contextlib import closing
from importlib.metadata import version
from typing import Any, Iterator
from urllib.parse import urlsplit

from pytest_speechlab import (
    Audio,
    AudioSent,
    Fault,
    Partial,
    Segment,
    Transcript,
    hookimpl,
)

SAMPLE_RATE = 16000
FORMATS = ("verbose_json", "json", "text")
RETRIED = frozenset({429, 500, 502, 503, 504})
COMMON = {"timeout": 60.0, "connect_timeout": 5.0, "retries": 3, "max_backoff": 8.0, "concurrency": 1,
          "max_response_mb": 4.0}
KNOWN = {"base_url", "served_model", "model_field", "language", "temperature", "response_format", "stream", "form",
         "voice", "api_key_env", "batch_size", *COMMON}


class ServiceError(Exception):
    """A request that failed: the message names the service, the cause and what was tried."""


def _check_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} needs base_url = \"http://host:port\" (the service's address) in its variant")
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: base_url {value!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError(f"{name}: base_url must not carry credentials (they would be recorded with every "
                         "result); put the key in an environment variable and name it with api_key_env")
    if parts.query or parts.fragment:
        raise ValueError(f"{name}: base_url {value!r} must not have a query or fragment")
    return url


def _number(params: dict, key: str, name: str, low: float = 0.0) -> float:
    value = params.get(key, COMMON.get(key))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ValueError(f"{name}: {key} must be a number >= {low:g}, got {value!r}")
    return float(value)


class Deadline:
    """One request's deadline (``timeout``), kept whatever the service does: httpx's timeouts are per
    read, so a service that trickles its headers or body a byte at a time would hold the request
    without end. When the deadline passes, the request's connection is shut down (each request
    has its own connection for that reason), which ends the read that waits on it."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._stream = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict) -> None:
        """httpcore's ``trace`` extension: the connection this request opened."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self._stream = info.get("return_value")

    def _expire(self) -> None:
        self.expired = True
        sock = self._stream.get_extra_info("socket") if self._stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already

    def passed(self) -> bool:
        return self.expired or time.monotonic() > self.at

    def cancel(self) -> None:
        self._timer.cancel()


class ServiceClient:
    """What the ASR and TTS clients share: the checked parameters, the HTTP client, the key, the
    retry loop with back-off, the bounded and checked reading of a response, the identity probe."""

    def __init__(self, params: dict, name: str) -> None:
        import httpx  # only when the model is built

        unknown = sorted(set(params) - KNOWN)
        if unknown:
            raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
        self.name = name
        self.base_url = _check_url(params.get("base_url"), name)
        self.served_model = params.get("served_model") or ""
        self.model_field = params.get("model_field", "model")
        if not isinstance(self.served_model, str) or not isinstance(self.model_field, str):
            raise ValueError(f"{name}: served_model and model_field must be strings")
        self.form = params.get("form") or {}
        if not isinstance(self.form, dict):
            raise ValueError(f"{name}: form must be a table of extra fields, got {type(self.form).__name__}")
        self.timeout = _number(params, "timeout", name, 0.001)
        self.retries = int(_number(params, "retries", name))
        self.max_backoff = _number(params, "max_backoff", name)
        self.max_bytes = int(_number(params, "max_response_mb", name, 0.001) * 1024 * 1024)
        self.key_env = params.get("api_key_env")
        self._key = None
        if self.key_env is not None:
            if not isinstance(self.key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.key_env):
                raise ValueError(f"{name}: api_key_env must name an environment variable, got {self.key_env!r}")
            self._key = os.environ.get(self.key_env)
            if not self._key:
                raise ValueError(f"{name}: the environment variable {self.key_env} (api_key_env) is not set")
        headers = {"User-Agent": f"pytest-speechlab speechlab-openai-api/{version('speechlab-openai-api')}"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self.http = httpx.Client(headers=headers, follow_redirects=False, trust_env=False,
                                 limits=httpx.Limits(max_keepalive_connections=0),  # a connection per request (Deadline)
                                 timeout=httpx.Timeout(self.timeout, connect=_number(params, "connect_timeout", name, 0.001)))
        self.httpx = httpx
        self.reported = self.probe()

    def _clean(self, text: str) -> str:
        """A message about the service, never the key."""
        return text.replace(self._key, "[API key]") if self._key else text

    def probe(self) -> dict:
        """What the service says of itself (best effort, each probe bounded): its OpenAPI title and
        version, the models it lists, version headers. A service that does not answer at all is a
        load error that says so."""
        reported: dict[str, Any] = {}
        answered = False
        for path in ("/openapi.json", "/v1/models", "/health"):
            try:
                with self.http.stream("GET", self.base_url + path, timeout=min(self.timeout, 5.0)) as response:
                    answered = True
                    body = self._read(response, limit=1 << 20) if response.status_code == 200 else b""
                    headers = {k.lower(): v[:100] for k, v in response.headers.items()
                               if "version" in k.lower() or k.lower() == "server"}
            except self.httpx.TransportError:
                continue
            except ServiceError:
                body, headers = b"", {}
            reported.setdefault("headers", {}).update(headers)
            try:
                data = json.loads(body) if body else None
            except ValueError:
                data = None
            if path == "/openapi.json" and isinstance(data, dict) and isinstance(data.get("info"), dict):
                info = data["info"]
                reported["openapi"] = f"{str(info.get('title'))[:80]} {str(info.get('version'))[:40]}"
            elif path == "/v1/models" and isinstance(data, dict) and isinstance(data.get("data"), list):
                reported["models"] = sorted(str(m.get("id"))[:100] for m in data["data"][:50] if isinstance(m, dict))
        if not answered:
            raise ConnectionError(f"{self.name}: the service at {self.base_url} does not answer (is it running?)")
        return self._withheld(reported)

    def _withheld(self, value: Any) -> Any:
        """What the service reported, with every value that holds the API key (or its first 8
        characters: a cut echo) withheld: it becomes the identity, stored and printed."""
        if isinstance(value, dict):
            return {k: self._withheld(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._withheld(v) for v in value]
        if isinstance(value, str) and self._key and (self._key in value or self._key[:8] in value):
            return "[withheld: it held the API key]"
        return value

    def identity(self, endpoint: str) -> dict:
        return {"url": self.base_url, "endpoint": endpoint, "served_model": self.served_model,
                "model_field": self.model_field, "reported": self.reported,
                "api_key": f"from ${self.key_env}" if self.key_env else None}

    def _blocks(self, response, limit: int | None = None) -> Iterator[bytes]:
        """The response body, block by block, within the request's deadline (``timeout`` is the whole
        request's, however slowly the service trickles bytes) and within ``limit`` bytes."""
        limit = limit or self.max_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ServiceError(f"response too large: {int(declared):,} bytes declared (limit {limit:,}; max_response_mb)")
        deadline, read = getattr(response, "speechlab_deadline", None), 0
        try:
            for block in response.iter_bytes():  # each block as it arrives (a chunk size would wait to fill it)
                read += len(block)
                if read > limit:
                    raise ServiceError(f"response too large: more than {limit:,} bytes (max_response_mb)")
                if deadline is not None and deadline.passed():
                    raise self._late(read)
                yield block
            if deadline is not None and deadline.expired:  # a body read to its close: the deadline closed it
                raise self._late(read)
        except self.httpx.TransportError:
            if deadline is not None and deadline.passed():
                raise self._late(read) from None
            raise
        finally:
            if deadline is not None:
                deadline.cancel()

    def _late(self, read: int) -> ServiceError:
        return ServiceError(f"no complete response within {self.timeout:g} s (timeout: a deadline for the whole "
                            f"request, streaming included; {read:,} bytes had arrived)")

    def _read(self, response, limit: int | None = None) -> bytes:
        return b"".join(self._blocks(response, limit))

    def lines(self, response) -> Iterator[str]:
        """The body's lines (a server-sent event stream), none longer than ``max_response_mb`` and all
        within the request's deadline: a line that never ends cannot fill the memory."""
        pending = bytearray()
        for block in self._blocks(response):
            pending += block
            *complete, rest = pending.split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r").decode("utf-8", "replace")
            pending = bytearray(rest)
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", "replace")

    def _pause(self, attempt: int, response=None) -> None:
        wait = min(self.max_backoff, 0.25 * 2 ** attempt) * (0.5 + random.random() / 2)
        after = response.headers.get("retry-after") if response is not None else None
        if after:
            try:
                wait = min(self.max_backoff, max(0.0, float(after)))
            except ValueError:
                pass
        time.sleep(wait)

    def post(self, path: str, **kwargs) -> Iterator[Any]:
        """POST with retries: yields a Fault for each retried 429/5xx or refused connection, then
        the open, streamed response (the caller reads and closes it). A timeout is not retried: the
        request failed, and says after how long."""
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            deadline = Deadline(self.timeout)  # the whole request's: headers and reading included
            try:
                request = self.http.build_request("POST", url, extensions={"trace": deadline.trace}, **kwargs)
                response = self.http.send(request, stream=True)
                response.speechlab_deadline = deadline
            except self.httpx.TransportError as exc:
                deadline.cancel()
                if deadline.expired or isinstance(exc, self.httpx.TimeoutException):
                    cause = "the response headers were not complete" if deadline.expired else type(exc).__name__
                    raise ServiceError(f"timed out after {self.timeout:g} s (timeout) waiting for POST {url} "
                                       f"({cause})") from None
                detail = self._clean(str(exc) or type(exc).__name__)[:200]
                if last:
                    raise ServiceError(f"connection to {url} failed {attempt + 1} time(s): {detail}") from None
                yield Fault("connection", detail)
                self._pause(attempt)
                continue
            if response.status_code in RETRIED and not last:
                yield Fault(f"http_{response.status_code}", f"{url} answered HTTP {response.status_code}")
                response.close()
                deadline.cancel()
                self._pause(attempt, response)
                continue
            if 300 <= response.status_code < 400:
                target = self._clean(response.headers.get("location", "(no Location header)"))[:200]
                response.close()
                deadline.cancel()
                raise ServiceError(f"POST {url} answered HTTP {response.status_code}, a redirect to {target!r}: "
                                   "redirects are not followed (the request would be sent elsewhere); set base_url "
                                   "to where the service is")
            if response.status_code >= 400:
                try:
                    body = self._read(response, limit=4096).decode("utf-8", "replace")
                except ServiceError:
                    body = "(a body too large to show)"
                finally:
                    response.close()
                tried = f" after {attempt + 1} attempts" if attempt else ""
                raise ServiceError(f"HTTP {response.status_code} from POST {url}{tried}: {self._clean(body)[:300]!r}")
            yield response
            return

    def close(self) -> None:
        self.http.close()


def _pcm_wav(audio) -> bytes:
    """The model input (float32 in [-1, 1] at 16 kHz) as a 16-bit PCM WAV file."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _json(body: bytes, what: str) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServiceError(f"{what} is not valid UTF-8 (byte {exc.start}: {body[exc.start:exc.start + 4]!r})") from None
    try:
        return json.loads(text)
    except ValueError:
        raise ServiceError(f"{what} is not JSON (it starts {text[:80]!r})") from None


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def transcript_from(data: Any, response_format: str) -> Transcript:
    """A ``json``/``verbose_json`` body as a Transcript, every field checked for its type."""
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ServiceError(f"the {response_format} response has no string 'text' (got {str(data)[:120]!r})")
    segments = []
    raw = data.get("segments") if response_format == "verbose_json" else None
    if raw is not None and not isinstance(raw, list):
        raise ServiceError(f"the verbose_json 'segments' is a {type(raw).__name__}, not a list")
    for i, seg in enumerate(raw or ()):
        start, end = (_number_or_none(seg.get(k)) if isinstance(seg, dict) else None for k in ("start", "end"))
        if start is None or end is None or not isinstance(seg.get("text"), str):
            raise ServiceError(f"verbose_json segment {i} lacks a numeric start/end or a string text: {str(seg)[:120]!r}")
        segments.append(Segment(start, end, seg["text"], _number_or_none(seg.get("avg_logprob")),
                                _number_or_none(seg.get("no_speech_prob")), _number_or_none(seg.get("compression_ratio")),
                                _number_or_none(seg.get("temperature"))))
    language = data.get("language") if isinstance(data.get("language"), str) else None
    return Transcript(data["text"].strip(), tuple(segments), language, {"response_format": response_format})


class OpenAIASR:
    """ASR through ``/v1/audio/transcriptions``; see the module docstring."""

    sample_rate = SAMPLE_RATE
    PATH = "/v1/audio/transcriptions"

    def __init__(self, params: dict, name: str = "openai-api/asr") -> None:
        self.client = ServiceClient(params, name)
        self.language = params.get("language")
        self.temperature = params.get("temperature")
        self.stream = bool(params.get("stream", False))
        self.format = params.get("response_format", "verbose_json")
        if self.format not in FORMATS:
            raise ValueError(f"{name}: response_format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.language == "dataset":
            self.language = None  # each utterance's own language comes as language=

    def fields(self, language: str | None) -> dict:
        fields = {str(k): str(v) for k, v in self.client.form.items()}
        if self.client.served_model:
            fields[self.client.model_field] = self.client.served_model
        if language or self.language:
            fields["language"] = language or self.language
        if self.temperature is not None:
            fields["temperature"] = str(self.temperature)
        fields["response_format"] = "json" if self.stream and self.format == "verbose_json" else self.format
        if self.stream:
            fields["stream"] = "true"
        return fields

    def transcribe(self, audio, language: str | None = None) -> Transcript:
        *_, final = self.transcribe_events(audio, language)
        return final

    def transcribe_events(self, audio, language: str | None = None) -> Iterator[Any]:
        """One request's events. A service that refuses the response format (HTTP 400/422 naming
        it) is asked for the next one (verbose_json, json, text), which is kept for later requests."""
        while True:
            try:
                yield from self._request(audio, language)
                return
            except ServiceError as exc:
                message = str(exc)
                refused = re.match(r"HTTP (400|422)\b", message) and re.search(r"format|verbose", message, re.I)
                if not refused or self.format == FORMATS[-1] or self.stream:
                    raise
                yield Fault("format_refused", f"{self.format} refused: {message[:120]}")
                self.format = FORMATS[FORMATS.index(self.format) + 1]

    def _request(self, audio, language: str | None) -> Iterator[Any]:
        fields = self.fields(language)
        for item in self.client.post(self.PATH, files={"file": ("audio.wav", _pcm_wav(audio), "audio/wav")}, data=fields):
            if isinstance(item, Fault):
                yield item
                continue
            with closing(item) as response:
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind == "text/event-stream":
                    yield AudioSent()  # the request body is sent once the response begins
                    yield from self._events(response)
                    return
                body = self.client._read(response)
            yield self._parse(body, kind, fields["response_format"])

    def _parse(self, body: bytes, kind: str, response_format: str) -> Transcript:
        if response_format == "text":
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ServiceError(f"the text response is not valid UTF-8 (byte {exc.start})") from None
            if kind == "text/html" or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
                raise ServiceError(f"the service sent HTML, not a transcript (it starts {text[:80]!r})")
            return Transcript(text.strip(), (), None, {"response_format": "text"})
        return transcript_from(_json(body, f"the {response_format} response ({kind or 'no content-type'})"),
                               response_format)

    def _events(self, response) -> Iterator[Any]:
        """Server-sent events: ``transcript.text.delta`` pieces, then ``transcript.text.done``."""
        pieces = []
        for line in self.client.lines(response):
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            event = _json(payload.encode("utf-8", "surrogatepass"), "a server-sent event")
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "transcript.text.delta" and isinstance(event.get("delta"), str):
                pieces.append(event["delta"])
                yield Partial(event["delta"])
            elif kind == "transcript.text.done" and isinstance(event.get("text"), str):
                yield Transcript(event["text"].strip(), (), None, {"response_format": "sse", "partials": len(pieces)})
                return
            elif kind in ("error", "transcript.error"):
                raise ServiceError(f"the service streamed an error: {str(event)[:300]!r}")
        if pieces:
            raise ServiceError(f"the event stream ended after {len(pieces)} partials without transcript.text.done")
        raise ServiceError("the event stream ended without a transcript")

    def info(self) -> dict:
        return {
            "backend_version": f"speechlab-openai-api {version('speechlab-openai-api')}, httpx {version('httpx')}",
            "device": "service", "threads": None,
            "service": self.client.identity(self.PATH),
            "decode": {"language": self.language, "temperature": self.temperature, "response_format": self.format,
                       "stream": self.stream, "form": dict(self.client.form)},
            "input": "16-bit PCM WAV at 16 kHz (the service decodes it)",
        }

    def close(self) -> None:
        self.client.close()


class OpenAITTS:
    """TTS through ``/v1/audio/speech``: the WAV the service returns, decoded with soundfile."""

    PATH = "/v1/audio/speech"
    deterministic = False

    def __init__(self, params: dict, name: str = "openai-api/tts") -> None:
        self.client = ServiceClient(params, name)
        self.voice = params.get("voice", "alloy")
        if not isinstance(self.voice, str):
            raise ValueError(f"{name}: voice must be a string")

    def synthesize(self, text: str) -> Audio:
        import numpy as np
        import soundfile as sf

        payload = {**self.client.form, "input": text, "voice": self.voice, "response_format": "wav"}
        if self.client.served_model:
            payload[self.client.model_field] = self.client.served_model
        for item in self.client.post(self.PATH, json=payload):
            if isinstance(item, Fault):
                continue  # retried; the final outcome is what the TTS suite sees
            with closing(item) as response:
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                body = self.client._read(response)
            if kind in ("application/json", "text/html", "text/plain"):
                raise ServiceError(f"the service sent {kind}, not audio: {body[:120]!r}")
            try:
                samples, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
            except Exception as exc:  # noqa: BLE001 - whatever the service sent
                raise ServiceError(f"the speech response is not audio soundfile can read ({kind or 'no content-type'}, "
                                   f"{len(body):,} bytes): {exc}") from None
            return Audio(np.ascontiguousarray(samples.mean(axis=1)), int(rate))
        raise ServiceError("no response")  # pragma: no cover

    def info(self) -> dict:
        return {"backend_version": f"speechlab-openai-api {version('speechlab-openai-api')}, httpx {version('httpx')}",
                "device": "service", "threads": None, "service": self.client.identity(self.PATH),
                "decode": {"voice": self.voice, "form": dict(self.client.form)}}

    def close(self) -> None:
        self.client.close()


def load_asr(params: dict) -> OpenAIASR:
    return OpenAIASR(params)


def load_tts(params: dict) -> OpenAITTS:
    return OpenAITTS(params)


@hookimpl
def speechlab_register_models(register):
    register("openai-api/asr", task="asr", load=load_asr, backend="openai-api (HTTP)", service=True,
             weights="whatever the service runs (its identity is recorded: info()['service'])",
             params={**COMMON, "response_format": "verbose_json", "model_field": "model"},
             description="a service with the OpenAI-compatible /v1/audio/transcriptions; declare a variant with base_url")
    register("openai-api/tts", task="tts", load=load_tts, backend="openai-api (HTTP)", service=True,
             weights="whatever the service runs (its identity is recorded: info()['service'])",
             params={**COMMON, "model_field": "model"},
             description="a service with the OpenAI-compatible /v1/audio/speech; declare a variant with base_url")
