"""Servers the service tests start on 127.0.0.1 and stop: faster-whisper-server (OpenAI-compatible),
wyoming-faster-whisper (Wyoming), and the stand-in service of tests/stand_ins/speech_service.py,
all on the packaged tiny.en weights, at the decode settings of the in-process faster-whisper/tiny.en
(int8 on CPU, 2 threads, beam 5, English)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def tcp_up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def running(command: list[str], up, log: Path, env: dict | None = None, wait: float = 90.0):
    """Start ``command``, wait until ``up()``, yield the process; stop it (SIGTERM, then SIGKILL)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env=env or {**os.environ, "HF_HUB_OFFLINE": "1"},
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + wait
        while not up():
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited ({process.returncode}): {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not come up in {wait:g} s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tiny_en() -> str:
    from speechlab_faster_whisper import tiny_en_path

    return str(tiny_en_path())


@contextmanager
def faster_whisper_server(folder: Path):
    """faster-whisper-server in config mode: the model served as "tiny.en" (form field model_name)."""
    port = free_port()
    config = folder / "fws.yaml"
    config.write_text(f"models:\n  - name: tiny.en\n    path: {tiny_en()}\n"
                      "    model_options: {device: cpu, compute_type: int8, cpu_threads: 2}\n"
                      "    transcribe_options: {beam_size: 5}\n")
    command = [shutil.which("faster-whisper-server") or "faster-whisper-server", "--config", str(config),
               "--host", "127.0.0.1", "--port", str(port)]
    with running(command, lambda: http_up(f"http://127.0.0.1:{port}/health"), folder / "fws.log"):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def wyoming_server(folder: Path):
    port = free_port()
    command = [sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}", "--model", tiny_en(),
               "--data-dir", str(folder / "wyoming-data"), "--local-files-only", "--language", "en",
               "--compute-type", "int8", "--cpu-threads", "2", "--beam-size", "5"]
    (folder / "wyoming-data").mkdir(exist_ok=True)
    with running(command, lambda: tcp_up(port), folder / "wyoming.log"):
        yield f"tcp://127.0.0.1:{port}"


@contextmanager
def stand_in(folder: Path, *args: str, env: dict | None = None, name: str = "stand-in"):
    port = free_port()
    command = [sys.executable, str(HERE / "stand_ins" / "speech_service.py"), "--port", str(port), *args]
    with running(command, lambda: http_up(f"http://127.0.0.1:{port}/health"), folder / f"{name}.log",
                 env=env) as process:
        yield f"http://127.0.0.1:{port}", process


@contextmanager
def wyoming_stand_in(folder: Path):
    """tests/stand_ins/wyoming_streaming.py: a Wyoming server that sends transcript-chunks."""
    port = free_port()
    command = [sys.executable, str(HERE / "stand_ins" / "wyoming_streaming.py"), "--port", str(port)]
    with running(command, lambda: tcp_up(port), folder / "wyoming-stand-in.log"):
        yield f"tcp://127.0.0.1:{port}"
