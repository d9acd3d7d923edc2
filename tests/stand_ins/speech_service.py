"""A small speech service for the tests: the OpenAI-compatible audio API around real models
(faster-whisper tiny.en from the packaged weights; eSpeak NG for speech), with the behaviours no
server on the package index has: it really streams (``stream=true``: one server-sent event per
segment, as faster-whisper decodes it), and it misbehaves on purpose.

    python tests/stand_ins/speech_service.py --port 8123 [--stop-after N] [--require-key-env VAR]

The first path segment picks the behaviour: ``http://127.0.0.1:8123/<mode>/v1/audio/transcriptions``.
ok (verbose_json, json, text; SSE with stream=true), noverbose (HTTP 400 for verbose_json, as
faster-whisper-server answers text), html (an HTML page with status 200), huge (10 MB of JSON
text), badutf8 (bytes that are not UTF-8), slow (5 s before answering), ratelimit (HTTP 429 with
Retry-After: 0 to two requests of every three), always429, unavailable (HTTP 503). --stop-after N:
the process exits after answering N transcriptions (a server stopped mid-run). Bound to
127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_MODELS: dict = {}
_LOCK = threading.Lock()
_COUNT = itertools.count(1)
_ANSWERED = itertools.count(1)


def asr():
    with _LOCK:
        if "asr" not in _MODELS:
            from faster_whisper import WhisperModel
            from speechlab_faster_whisper import tiny_en_path

            _MODELS["asr"] = WhisperModel(str(tiny_en_path()), device="cpu", compute_type="int8", cpu_threads=2)
        return _MODELS["asr"]


def tts():
    with _LOCK:
        if "tts" not in _MODELS:
            from speechlab_espeak import ESpeakTTS

            _MODELS["tts"] = ESpeakTTS({})
        return _MODELS["tts"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    options: argparse.Namespace

    def log_message(self, *args) -> None:  # quiet
        return None

    def _send(self, status: int, body: bytes, kind: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Service-Version", "stand-in 1.0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.endswith("/openapi.json"):
            self._send(200, json.dumps({"info": {"title": "speechlab stand-in", "version": "1.0"}}).encode())
        else:
            self._send(200, b'{"status": "ok"}')

    def _form(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
        form = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            form[name] = part.get_payload(decode=True)
        return form

    def do_POST(self) -> None:
        key_env = self.options.require_key_env
        mode, _, endpoint = self.path.lstrip("/").partition("/")
        if key_env and self.headers.get("Authorization") != f"Bearer {os.environ[key_env]}":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return self._send(401, b'{"error": {"message": "invalid API key"}}')
        if endpoint == "v1/audio/speech":
            return self.speech()
        form = self._form()
        n = next(_COUNT)
        if mode == "ratelimit" and n % 3:
            return self._send(429, b'{"error": "slow down"}', headers={"Retry-After": "0"})
        if mode == "always429":
            return self._send(429, b'{"error": "slow down"}', headers={"Retry-After": "0"})
        if mode == "unavailable":
            return self._send(503, b"<html>503 Service Unavailable</html>", "text/html")
        if mode == "html":
            return self._send(200, b"<!DOCTYPE html><html><body><script>alert(1)</script>oops</body></html>", "text/html")
        if mode == "huge":
            return self._send(200, b'{"text": "' + b"la " * (10 * 1024 * 1024 // 3) + b'"}')
        if mode == "badutf8":
            return self._send(200, b'{"text": "caf\xe9 \xff\xfe"}')
        if mode == "slow":
            time.sleep(5)
        response_format = (form.get("response_format") or b"json").decode()
        if mode == "noverbose" and response_format == "verbose_json":
            return self._send(400, b'{"detail": {"error": {"message": "Unsupported response_format: verbose_json"}}}')
        language = (form.get("language") or b"").decode() or None
        import soundfile as sf

        audio, _ = sf.read(io.BytesIO(form["file"]), dtype="float32")
        segments, info = asr().transcribe(audio, beam_size=5, language=language)
        if form.get("stream") == b"true":
            self.stream(segments)
        else:
            segments = list(segments)
            text = "".join(s.text for s in segments)
            if response_format == "text":
                self._send(200, text.encode(), "text/plain")
            elif response_format == "verbose_json":
                self._send(200, json.dumps({"text": text, "language": info.language, "segments": [
                    {"start": s.start, "end": s.end, "text": s.text, "avg_logprob": s.avg_logprob,
                     "no_speech_prob": s.no_speech_prob, "compression_ratio": s.compression_ratio,
                     "temperature": s.temperature} for s in segments]}).encode())
            else:
                self._send(200, json.dumps({"text": text}).encode())
        if self.options.stop_after and next(_ANSWERED) >= self.options.stop_after:
            self.wfile.flush()
            os._exit(0)  # stopped mid-run, as a crashed or redeployed server is

    def stream(self, segments) -> None:
        """Server-sent events, each segment as soon as the model has decoded it."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        texts = []
        for segment in segments:
            texts.append(segment.text)
            event = {"type": "transcript.text.delta", "delta": segment.text}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        done = {"type": "transcript.text.done", "text": "".join(texts)}
        self.wfile.write(f"data: {json.dumps(done)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def speech(self) -> None:
        import soundfile as sf

        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length))
        audio = tts().synthesize(str(request["input"]))
        buffer = io.BytesIO()
        sf.write(buffer, audio.samples, audio.sample_rate, format="WAV", subtype="PCM_16")
        self._send(200, buffer.getvalue(), "audio/wav")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stop-after", type=int, default=0)
    parser.add_argument("--require-key-env")
    options = parser.parse_args()
    Handler.options = options
    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        sys.exit(0)


if __name__ == "__main__":
    main()
