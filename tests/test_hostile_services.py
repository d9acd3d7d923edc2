"""A hostile service on 127.0.0.1 against the OpenAI-compatible client: headers or a body trickled a
byte at a time and an event stream that never ends stop at the request's deadline; a line that never ends
stops at ``max_response_mb`` (peak RSS measured in a subprocess); a service that echoes the API key
does not get it into the model's identity."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

api = pytest.importorskip("speechlab_openai_api", reason="speechlab-openai-api (model_plugins/openai-api) is not installed")

KEY = "sk-test-0123456789abcdef"


class Hostile(BaseHTTPRequestHandler):
    mode = "trickle"

    def log_message(self, *args) -> None:
        return None

    def do_GET(self) -> None:  # the client's probes: an echo of the Authorization header, as some proxies do
        body = json.dumps({"info": {"title": "hostile", "version": "1"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Server-Version", f"echo {self.headers.get('Authorization', '')}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            getattr(self, f"_{self.server.mode}")()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _redirect(self) -> None:
        self.send_response(307)
        self.send_header("Location", "http://elsewhere.invalid/v1/audio/transcriptions")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _trickle(self) -> None:  # one byte every 0.2 s of a body that would take a minute
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "300")
        self.end_headers()
        for _ in range(300):
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.2)

    def _header_trickle(self) -> None:  # the status line and headers a byte every 0.2 s, never complete
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 300:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.2)

    def _endless_events(self) -> None:  # a small event every 0.2 s, never "done"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for _ in range(1000):
            self.wfile.write(b'data: {"type": "transcript.text.delta", "delta": "a"}\n\n')
            self.wfile.flush()
            time.sleep(0.2)

    def _endless_line(self) -> None:  # 150 MB of one event line without a newline
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b"data: ")
        block = b"x" * (1 << 20)
        for _ in range(150):
            self.wfile.write(block)


@pytest.fixture
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client(server, mode: str, **params):
    server.mode = mode
    return api.OpenAIASR({**api.COMMON, "response_format": "json", "base_url": f"http://127.0.0.1:{server.server_port}",
                          "retries": 0, **params})


LATE_BODY = r"no complete response within 1.5 s \(timeout: a deadline for the whole"


@pytest.mark.parametrize("mode, params, message", [
    ("trickle", {}, LATE_BODY),
    ("header_trickle", {}, r"timed out after 1.5 s \(timeout\) waiting for POST .*\(the response headers were not complete\)"),
    ("endless_events", {"stream": True}, LATE_BODY),
])
def test_a_request_stops_at_its_deadline_however_slowly_the_service_answers(hostile, mode, params, message):
    asr = client(hostile, mode, timeout=1.5, **params)
    started = time.monotonic()
    with pytest.raises(api.ServiceError, match=message):
        asr.transcribe(np.zeros(16000, dtype=np.float32))
    assert time.monotonic() - started < 6  # not the minute the service would take


def test_a_redirect_is_said_as_such(hostile):
    asr = client(hostile, "redirect")
    with pytest.raises(api.ServiceError, match=r"answered HTTP 307, a redirect to 'http://elsewhere.invalid/v1/audio/"
                                               r"transcriptions': redirects are not followed"):
        asr.transcribe(np.zeros(16000, dtype=np.float32))


def test_the_api_key_echoed_by_the_service_is_withheld_from_the_identity(hostile, monkeypatch):
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    asr = client(hostile, "trickle", api_key_env="HOSTILE_KEY")
    identity = json.dumps(asr.info())
    assert KEY not in identity and KEY[:8] not in identity
    assert "[withheld: it held the API key]" in identity


CHILD = """
import sys
import numpy as np


def peak_kb():  # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forked parent
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))


import speechlab_openai_api as api
asr = api.OpenAIASR({**api.COMMON, "response_format": "json", "stream": True, "retries": 0, "timeout": 60,
                     "max_response_mb": 4, "base_url": sys.argv[1]})
before = peak_kb()
try:
    asr.transcribe(np.zeros(16000, dtype=np.float32))
except api.ServiceError as exc:
    print("ERROR", exc)
print("GROWTH_KB", peak_kb() - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory is read from /proc (Linux)")
def test_a_line_that_never_ends_stops_at_max_response_mb_in_bounded_memory(hostile):
    hostile.mode = "endless_line"
    out = subprocess.run([sys.executable, "-c", CHILD, f"http://127.0.0.1:{hostile.server_port}"],
                         capture_output=True, text=True, timeout=120)
    assert "ERROR response too large: more than 4,194,304 bytes (max_response_mb)" in out.stdout, out.stdout + out.stderr
    growth_mb = int(out.stdout.split("GROWTH_KB")[1]) / 1024
    assert growth_mb < 40, f"peak RSS grew {growth_mb:.0f} MB reading a 150 MB line with max_response_mb = 4"


# -- a hostile Wyoming server ------------------------------------------------------------------------

def wyoming_server(reply: bytes):
    """A TCP server that answers every connection with ``reply`` (then 50 MB more), whatever it was sent."""
    import socketserver

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                self.request.sendall(reply)
                block = b"\0" * (1 << 20)
                for _ in range(50):
                    self.request.sendall(block)
            except OSError:
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("reply, message", [
    (b'{"type": "transcript", "payload_length": 2000000000}\n',  # then 50 MB: never read
     "declaring payload_length 2000000000: more than the 1,048,576 bytes this client reads"),
    (b"not json at all\n", "sent an event that is not JSON (it starts b'not json at all"),
    (b'{"data": {"text": "x"}}\n', "sent an event without a type"),
    (b"x" * 200_000, "sent an event header longer than 64 KiB without a newline"),
], ids=["payload-2e9", "not-json", "no-type", "endless-header"])
def test_a_hostile_wyoming_event_is_a_clear_error_read_in_bounded_memory(reply, message):
    wyoming = pytest.importorskip("speechlab_wyoming", reason="speechlab-wyoming (model_plugins/wyoming) is not installed")
    server = wyoming_server(reply)
    try:
        asr = wyoming.WyomingASR({"uri": f"tcp://127.0.0.1:{server.server_address[1]}", "timeout": 5, "retries": 0})
        assert asr.reported == {"asr": "the server did not describe itself"}
        with pytest.raises(wyoming.ServiceError, match=re.escape(message)):
            asr.transcribe(np.zeros(16000, dtype=np.float32))
    finally:
        server.shutdown()
        server.server_close()
