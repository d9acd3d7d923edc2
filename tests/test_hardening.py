"""Faults that must not lose a run or leak a secret (issue 29, in part): runs in progress survive a
prune, a results database that was not written fails the session distinctly, credentials in every URL
form are redacted, the command line refuses what it cannot do with one clear line, and the viewer
redacts its token however it is spelled and redirects only to its own paths."""
from __future__ import annotations

import datetime as _dt
import json
import os

import pytest
from click.testing import CliRunner

from pytest_speechlab._text import redact
from pytest_speechlab.cli import main as speechlab
from pytest_speechlab.sinks.store import IN_PROGRESS_HOURS, Store

UNREACHABLE = "postgresql+psycopg://speechlab@127.0.0.1:9/none"  # nothing listens on port 9


def cli(*args: str, db: str):
    result = CliRunner().invoke(speechlab, ["--db", db, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def started(store: Store, hours_ago: float, status: str = "incomplete") -> str:
    when = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=hours_ago)).isoformat()
    return store.start_run({"started_at": when, "status": status})


def test_prune_keeps_baselines_listening_tests_runs_and_runs_that_may_be_in_progress(db_url):
    store = Store(db_url)
    running = started(store, 0.1)  # a session recording right now
    killed = started(store, IN_PROGRESS_HOURS + 1)  # killed yesterday: it stays incomplete forever
    old = started(store, 48, status="complete")
    named = started(store, 72, status="complete")
    listened = started(store, 96, status="complete")
    store.set_baseline("main", named)
    store.create_listening_test("voices", "acr", {"systems": [{"label": "S1", "run": listened, "model": "m"}],
                                                  "items": [], "folder": "/nowhere"})
    result = cli("prune", "--keep", "0", "--yes", db=db_url)
    assert result.exit_code == 0 and "deleted 2 run(s)" in result.output
    assert {r["id"] for r in store.runs()} == {running, named, listened}
    assert killed not in {r["id"] for r in store.runs()} and old not in {r["id"] for r in store.runs()}


@pytest.mark.parametrize("args, message", [
    (["prune", "--keep", "-1", "--yes"], "--keep -1: give the number of newest runs to keep (0 or more)"),
    (["baseline", "set", "", "latest"], "baseline name '': give 1-200 printable characters"),
    (["baseline", "set", "x" * 5000, "latest"], "give 1-200 printable characters"),
    (["baseline", "set", " main", "latest"], "without leading or trailing spaces"),
    (["runs", "--limit", "0"], "Invalid value for '--limit': 0 is not in the range x>=1"),
    (["runs", "--limit", "-5"], "Invalid value for '--limit': -5 is not in the range x>=1"),
])
def test_the_command_line_refuses_what_it_cannot_do_in_one_line(tmp_path, args, message):
    db = str(tmp_path / "r.db")
    Store(f"sqlite:///{db}").start_run({})
    result = cli(*args, db=db)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 or "Usage:" in result.output  # click's own usage block


def test_export_into_a_missing_folder_and_import_of_non_standard_json_are_clear_errors(tmp_path):
    db = str(tmp_path / "r.db")
    store = Store(f"sqlite:///{db}")
    store.finish_run(store.start_run({}))
    missing = cli("export", "latest", "-o", str(tmp_path / "no" / "such" / "run.json"), db=db)
    assert missing.exit_code == 2 and "not written (FileNotFoundError" in missing.output
    good = cli("export", "latest", "-o", str(tmp_path / "run.json"), db=db)
    assert good.exit_code == 0
    text = (tmp_path / "run.json").read_text().replace('"status": "complete"', '"status": "complete", "x": NaN', 1)
    (tmp_path / "nan.json").write_text(text)
    refused = cli("import", str(tmp_path / "nan.json"), db=str(tmp_path / "other.db"))
    assert refused.exit_code == 2 and "NaN is not a number standard JSON allows" in refused.output


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_import_of_a_device_or_a_pipe_returns_at_once_with_the_reason(tmp_path):
    result = cli("import", "/dev/zero", db=str(tmp_path / "r.db"))
    assert result.exit_code == 2 and "/dev/zero: not a regular file" in result.output
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = cli("import", str(fifo), db=str(tmp_path / "r.db"))
    assert result.exit_code == 2 and "not a regular file" in result.output


@pytest.mark.parametrize("text", [
    "postgresql+psycopg://speechlab@db.example/results?password=S3cret&sslmode=require",
    "postgresql+psycopg://speechlab:S3cret@db.example/results",
    "host=db.example user=speechlab password=S3cret dbname=results",
    "postgresql://db.example/results?user=speechlab&PASSWORD=S3cret",
    "mysql+pymysql://u@h/d?passwd=S3cret",
    "the service said: api_key='S3cret' is invalid",
])
def test_every_credential_form_is_redacted(text):
    assert "S3cret" not in redact(text) and "***" in redact(text)


def test_a_password_in_the_url_query_is_never_printed_or_stored(speechlab_project):
    url = UNREACHABLE + "?password=S3cret-Query"
    result = speechlab_project.runpytest("suites", "--speechlab-db", url, "--speechlab-json", "run.json")
    out = result.stdout.str() + result.stderr.str()
    assert "S3cret-Query" not in out and "password=***" in out
    assert "S3cret-Query" not in (speechlab_project.path / "run.json").read_text()


def test_a_database_that_was_not_written_fails_the_session_distinctly(speechlab_project):
    result = speechlab_project.runpytest("suites", "--speechlab-db", UNREACHABLE, "--speechlab-json", "run.json")
    out = result.stdout.str()
    assert result.ret == 6  # the tests passed; the history was not written
    assert "results database not written" in out
    assert "exit status 6: the tests passed, but the results database was not written" in out
    record = json.loads((speechlab_project.path / "run.json").read_text())
    assert record["evaluations"] and record["run"] is None  # every measured figure kept in the run file
    with open(speechlab_project.path / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.speechlab]\ndb_failure = "warn"\n')
    warned = speechlab_project.runpytest("suites", "--speechlab-db", UNREACHABLE)
    assert warned.ret == 0 and "results database not written" in warned.stdout.str()


def test_a_failing_test_keeps_its_own_exit_status_when_the_database_also_failed(speechlab_project):
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace('"the cat sat on the mat"', '"a dog ran"'))  # a WER failure
    result = speechlab_project.runpytest("suites", "--speechlab-db", UNREACHABLE)
    assert result.ret == 1


def test_the_viewer_log_redacts_the_token_however_its_name_is_spelled():
    from pytest_speechlab.view.app import redacted_request_line

    for line in ("GET /runs?token=abc HTTP/1.1", "GET /runs?%74oken=abc&x=1 HTTP/1.1",
                 "GET /runs?x=1&%74%6F%6B%65%6E=abc HTTP/1.1", "GET /?tok%65n=abc HTTP/1.1"):
        assert "abc" not in redacted_request_line(line), line
    assert redacted_request_line("GET /runs?tokens=abc HTTP/1.1").endswith("tokens=abc HTTP/1.1")


# PATH_INFO as the server hands it over, percent-decoded ("/%09/evil.example/" arrives as the first)
@pytest.mark.parametrize("path", ["/\t/evil.example/", "//evil.example/", "/\\evil.example/", "/ /evil.example/",
                                  "/\n//evil.example/"])
def test_the_viewer_redirects_only_to_a_path_on_this_host(tmp_path, path):
    pytest.importorskip("flask", reason="the viewer needs the [view] extra (flask)")
    from pytest_speechlab.view.app import create_app

    db = f"sqlite:///{tmp_path / 'r.db'}"
    Store(db).start_run({})
    app = create_app(lambda: Store(db, read_only=True), "T0ken", port_label="1")
    client = app.test_client()
    client.set_cookie("speechlab_view_1", "T0ken")  # the cookie of an earlier visit, and an empty token=
    response = client.get("/?token=", environ_overrides={"PATH_INFO": path}, follow_redirects=False)
    location = response.headers.get("Location", "")
    assert response.status_code in (303, 404) and "T0ken" not in location
    if response.status_code == 303:
        assert location.startswith("/") and not location.startswith(("//", "/\\"))  # a path here, never a host
        assert not any(c in location for c in "\t\n\r \\")


def test_a_folder_a_pipe_or_a_device_as_audio_says_what_it_is(tmp_path):
    from helpers import write_audio, write_manifest

    from pytest_speechlab import load_dataset

    write_audio(tmp_path / "good.wav", 1.0)
    (tmp_path / "folder.wav").mkdir()
    os.mkfifo(tmp_path / "pipe.wav")
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", tmp_path / "zero.wav")
    lines = [{"id": name, "audio": f"{name}.wav", "text": "a"} for name in ("good", "folder", "pipe", "zero", "gone")]
    dataset = load_dataset(write_manifest(tmp_path / "m.jsonl", lines))
    assert [u.id for u in dataset.utterances] == ["good"]  # the good line is kept
    said = {e.utterance_id: e.message for e in dataset.errors}
    assert "is a folder, not an audio file" in said["folder"]
    assert "is a named pipe (FIFO), not an audio file" in said["pipe"]
    assert "not found" in said["gone"]
    if "zero" in said:
        assert "is a character device, not an audio file" in said["zero"]


def test_a_lambda_loader_is_refused_for_workers_and_ray_with_the_reason():
    from pytest_speechlab._registry import ModelSpec
    from pytest_speechlab._types import SpeechlabError
    from pytest_speechlab.engine.executors import worker_payload
    from pytest_speechlab.engine.runner import Runner

    spec = ModelSpec("local/asr", "asr", lambda params: None)
    for where in ("worker processes", "Ray actors"):
        refused = rf"'local/asr' cannot be sent to {where} \((PicklingError|AttributeError).*not a lambda"
        with pytest.raises(SpeechlabError, match=refused):
            worker_payload(Runner(), spec, where)


def test_a_conftest_hook_with_a_wrong_signature_is_a_usage_error(pytester):
    pytester.makeconftest("from pytest_speechlab import hookimpl\n\n\n@hookimpl\n"
                          "def speechlab_register_models(register, extra):\n    pass\n")
    pytester.makepyfile(test_x="def test_x(speechlab_eval):\n    pass\n")
    result = pytester.runpytest_subprocess("--speechlab-no-db", "-p", "no:cacheprovider")
    text = result.stdout.str() + result.stderr.str()
    assert "conftest.py: a speechlab hook does not match its specification" in text and "{'extra'}" in text
    assert "INTERNALERROR" not in text and "Traceback" not in text and result.ret != 0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory is read from /proc (Linux)")
def test_a_gigabyte_line_in_a_small_gzip_is_one_error_read_in_bounded_memory(tmp_path):
    """A 1.2 MB gzipped lhotse manifest whose one line is 1.2 GB: the good lines load, the long one
    is an error, and peak RSS (measured in a subprocess) stays far below the line's size."""
    import gzip
    import subprocess
    import sys

    from helpers import write_audio

    write_audio(tmp_path / "a.wav", 1.0)
    recording = {"id": "a", "sources": [{"type": "file", "channels": [0], "source": "a.wav"}],
                 "sampling_rate": 16000, "num_samples": 16000, "duration": 1.0}
    with gzip.open(tmp_path / "recordings.jsonl.gz", "wb") as fh:
        fh.write(json.dumps(recording).encode() + b"\n")
    with gzip.open(tmp_path / "supervisions.jsonl.gz", "wb", compresslevel=9) as fh:
        fh.write(json.dumps({"id": "s1", "recording_id": "a", "start": 0.0, "duration": 1.0, "channel": 0,
                             "text": "one", "language": "en"}).encode() + b"\n")
        fh.write(b'{"id": "huge", "text": "')
        block = b"a" * (1 << 24)
        for _ in range(72):  # 1.2 GB
            fh.write(block)
        fh.write(b'"}\n')
    assert (tmp_path / "supervisions.jsonl.gz").stat().st_size < 4 << 20
    # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forked copy of this (large) process
    child = ("import sys\nfrom pytest_speechlab import load_dataset\n"
             "d = load_dataset(sys.argv[1])\n"
             "print([u.id for u in d.utterances], [e.message for e in d.errors])\n"
             "print('PEAK_MB', next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)\n")
    out = subprocess.run([sys.executable, "-c", child, str(tmp_path / "supervisions.jsonl.gz")],
                         capture_output=True, text=True, timeout=300)
    assert "longer than 16 MiB: skipped" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "['s1']" in out.stdout  # the good line is kept
    assert int(out.stdout.split("PEAK_MB")[1]) < 400, out.stdout


def test_impossible_segment_times_are_said_and_repaired_and_text_past_the_end_stays_evidence():
    from pytest_speechlab import Segment, Transcript
    from pytest_speechlab.tasks.asr import repaired

    out, notes = repaired(Transcript("a b c", (Segment(-1e308, 1e308, "a"), Segment(0.2, 0.9, "b"),
                                               Segment(1.0, 0.5, "c"))), 1.5)
    (note,) = notes
    assert note.startswith("2 segment(s) with impossible times (not finite, before the start of the 1.50 s of audio, "
                           "or reversed; first: -1e+308 to 1e+308 s): repaired")
    assert [(s.start, s.end) for s in out.segments] == [(0.0, 1e308), (0.2, 0.9), (1.0, 1.0)]
    nan = repaired(Transcript("a", (Segment(float("nan"), float("inf"), "a"),)), 1.5)[0]
    assert [(s.start, s.end) for s in nan.segments] == [(0.0, 1.5)]
    assert repaired(Transcript("a", (Segment(0.0, 9.0, "a"),)), 1.5)[1] == ()  # past the end: past_end's finding


def test_a_relative_or_wrong_speechlab_audio_dir_for_embedded_audio(tmp_path, monkeypatch):
    from pytest_speechlab._corpora import audio_dir, store_audio
    from pytest_speechlab._types import SpeechlabError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPEECHLAB_AUDIO_DIR", "embedded")  # relative: made absolute where it is read
    path = store_audio(b"RIFF....WAVEfmt ", "x.wav")
    assert path.is_absolute() and path.parent == tmp_path / "embedded" and audio_dir() == tmp_path / "embedded"
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("SPEECHLAB_AUDIO_DIR", str(tmp_path / "a-file"))
    with pytest.raises(SpeechlabError, match="SPEECHLAB_AUDIO_DIR=.*a-file is a file, not a folder for embedded audio"):
        store_audio(b"RIFF....WAVEfmt ", "x.wav")


def test_a_nul_byte_in_a_csv_header_is_named_once(tmp_path):
    from pytest_speechlab import load_dataset
    from pytest_speechlab._types import SpeechlabError

    (tmp_path / "data.csv").write_bytes(b"audio,te\x00xt\na.wav,one\nb.wav,two\n")
    with pytest.raises(SpeechlabError, match=r"data.csv line 1: the header holds a NUL byte \(at character 9\)"):
        load_dataset(tmp_path / "data.csv")


CRASHING = '''

class Crashing(LengthModel):
    def transcribe(self, audio):
        if f"{len(audio) / self.sample_rate:.2f}" == "2.00":
            os._exit(3)  # what a model that aborts (or segfaults) does to its process
        return super().transcribe(audio)


def load_crashing(params):
    return Crashing(params)


@hookimpl(specname="speechlab_register_models")
def register_crashing(register):
    register("fake/crashing", task="asr", load=load_crashing, backend="fake")
'''


def test_with_isolate_a_model_that_kills_its_process_loses_only_that_utterance(speechlab_project):
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + CRASHING)
    result = speechlab_project.runpytest_subprocess("suites", "--speechlab-model", "fake/crashing", "--speechlab-isolate",
                                                    "--speechlab-json", "run.json", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and "speechlab summary" in out
    (evaluation,) = json.loads((speechlab_project.path / "run.json").read_text())["evaluations"]
    by_id = {u["utterance_id"]: u for u in evaluation["utterances"]}
    assert "the worker process died 3 times on this item" in by_id["c"]["error"]
    assert by_id["a"]["hypothesis"] == "the cat sat on the mat" and by_id["b"]["hypothesis"] == "a quick brown fox"
    assert "worker w1 died (exit code 3)" in out  # said in the summary


RAY_ATTACH = r"""
import os, subprocess, sys
from pytest_speechlab.engine.ray_executor import RayExecutor
executor = RayExecutor(1, 1, None)
ray = executor._connect()
address = ray.get_runtime_context().gcs_address
stranger = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
attach = "import ray; ray.init(address=sys.argv[1], log_to_driver=False); print('ATTACHED')"
out = subprocess.run([sys.executable, "-c", "import sys; " + attach, address], env=stranger,
                     capture_output=True, text=True, timeout=120)
print("STRANGER", "ATTACHED" in out.stdout, "AuthenticationError" in out.stderr)
executor.close()
again = RayExecutor(1, 1, None)  # a second session in the same process starts and works
print("AGAIN", again._connect().is_initialized())
again.close()
print("FILE", os.path.exists(os.path.expanduser("~/.ray/auth_token")))
"""


def test_the_sessions_own_ray_refuses_a_process_without_its_token(tmp_path):
    import shutil
    import subprocess
    import sys

    pytest.importorskip("ray", reason="Ray is not installed (pip install 'pytest-speechlab[ray]')")
    command = [sys.executable, "-c", RAY_ATTACH]
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):  # Ray's servers reachable from nowhere else
        command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    out = subprocess.run(command, env={**env, "HOME": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"},
                         capture_output=True, text=True, timeout=300)
    assert "STRANGER False True" in out.stdout, out.stdout + out.stderr[-3000:]
    assert "AGAIN True" in out.stdout and "FILE False" in out.stdout  # no token written under $HOME


def test_a_csv_manifest_over_a_gibibyte_is_refused_before_it_is_read(tmp_path):
    from pytest_speechlab import load_dataset
    from pytest_speechlab._types import SpeechlabError

    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:  # sparse: the size without the disk
        fh.write(b"audio,text\na.wav,one\n")
        fh.truncate((1 << 30) + 1)
    with pytest.raises(SpeechlabError, match="huge.csv: 1024 MiB, more than the 1024 MiB a CSV/TSV manifest is read up to"):
        load_dataset(path)
