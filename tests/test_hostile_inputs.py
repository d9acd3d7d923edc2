"""The hostile-input corpus: no input crashes the run, hides a defect, or loses measured data.

Each case runs the real suites (pytester) on a dataset of two good utterances plus one hostile
thing (a manifest field, an audio file, a model output, a configuration value, a report path) and
checks three things: the clear error that names the place and the problem, that the two good
utterances were measured and are in the results database, and that no traceback or INTERNALERROR
reached the output. Every case runs on SQLite and on the PostgreSQL server .ci/run starts.
"""
from __future__ import annotations

import json
import re
import textwrap

import numpy as np
import pytest
import soundfile as sf

from helpers import REPO, write_audio

HOSTILE_CONFTEST = r'''
import math, os, time
from pytest_speechlab import hookimpl, Transcript, Segment

GOOD = {"1.00": "the cat sat on the mat", "2.00": "hello world"}


class Hostile:
    """Knows the good clips by their length; any other length selects a misbehaviour."""
    sample_rate = 16000

    def __init__(self, params):
        self.params = params

    def transcribe(self, audio):
        key = f"{len(audio) / self.sample_rate:.2f}"
        if key in GOOD:
            return Transcript(GOOD[key], (Segment(0.0, float(key), GOOD[key]),))
        mode = os.environ.get("HOSTILE_OUTPUT", "")
        if mode == "surrogate":
            return "bad \ud800 text"
        if mode == "nul":
            return "nul \x00 byte"
        if mode == "huge":
            return "again and " * 1_000_000
        if mode == "escapes":
            return "\x1b[31mRED\x1b]0;pwned title\x07 \x1b[2J"
        if mode == "not_text":
            return 42
        if mode == "text_none":
            return Transcript(None)
        if mode == "nan_segment":
            return Transcript("x", (Segment(float("nan"), 1.0, "x"),))
        if mode == "raise_escapes":
            raise RuntimeError("boom \x1b[2J\x1b]0;pwned\x07")
        if mode == "raise_bidi":  # a bidirectional override would reorder what the terminal shows
            raise RuntimeError("boom \u202etxt.exe\u2066")
        if mode == "hang":
            time.sleep(30)
        return "something else"

    def info(self):
        if os.environ.get("HOSTILE_INFO") == "raise":
            raise RuntimeError("info exploded")
        if os.environ.get("HOSTILE_INFO") == "list":
            return ["not", "a", "dict"]
        return {"threads": 1, "device": "cpu", "backend_version": "hostile 1.0"}

    def close(self):
        if os.environ.get("HOSTILE_CLOSE") == "raise":
            raise RuntimeError("close exploded")


@hookimpl
def speechlab_register_models(register):
    register("fake/hostile", task="asr", load=Hostile, backend="fake", weights="none")
'''

PYPROJECT = """
[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
speechlab_models = ["fake/hostile"]

[tool.speechlab.thresholds]
wer = 0.5
cer = 0.5
rtf = 1000.0
"""

GOOD_LINES = [
    {"id": "good1", "audio": "good1.wav", "text": "The cat sat on the mat."},
    {"id": "good2", "audio": "good2.wav", "text": "Hello, world!"},
]


@pytest.fixture
def hostile(pytester, monkeypatch, db_url):
    """A project with the hostile model, two good clips, the real suites and a results database."""
    monkeypatch.delenv("CI", raising=False)
    for var in ("HOSTILE_OUTPUT", "HOSTILE_INFO", "HOSTILE_CLOSE"):
        monkeypatch.delenv(var, raising=False)
    pytester.makeconftest(HOSTILE_CONFTEST)
    suites = pytester.mkdir("suites")
    for suite in ("test_asr_accuracy.py", "test_inputs.py", "test_hallucination.py"):
        (suites / suite).write_text((REPO / "suites" / suite).read_text())
    write_audio(pytester.path / "data" / "good1.wav", 1.0)
    write_audio(pytester.path / "data" / "good2.wav", 2.0)
    write_audio(pytester.path / "data" / "odd.wav", 1.5)  # the clip the hostile output is given for
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.db_url = db_url
    return pytester


def manifest(pytester, extra: list, name: str = "m.jsonl") -> str:
    path = pytester.path / "data" / name
    with open(path, "w", encoding="utf-8") as fh:
        for item in [*GOOD_LINES, *extra]:
            fh.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return str(path)


def run(pytester, *args: str):
    result = pytester.runpytest("suites", "--speechlab-db", pytester.db_url, *args)
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback (most recent call last)" not in text, text[-4000:]
    assert "INTERNALERROR" not in text, text[-4000:]
    return result, text


def stored(pytester) -> dict[str, dict]:
    """The latest run's utterance rows by id, and the run's status."""
    from pytest_speechlab.sinks.store import Store

    store = Store(pytester.db_url, read_only=True)
    run_id = store.resolve("latest")
    rows = {r["utterance_id"]: r for r in store.utterances(run_id)}
    rows["__status__"] = store.run(run_id)["status"]
    return rows


def assert_good_measured(pytester, text: str) -> dict:
    rows = stored(pytester)
    assert rows["__status__"] == "complete"
    assert rows["good1"]["hypothesis"] == "the cat sat on the mat" and rows["good1"]["substitutions"] == 0
    assert rows["good2"]["hypothesis"] == "hello world" and rows["good2"]["hits"] == 2
    return rows


# -- manifest fields: wrong JSON types, unpaired surrogates, NUL, size, nesting --------------------

MANIFEST_CASES = [
    ({"id": "x", "audio": "odd.wav", "text": "a", "language": 5}, "'language' must be a string, got a number 5"),
    ({"id": "x", "audio": "odd.wav", "text": "a", "language": ["en"]}, "'language' must be a string, got a list"),
    ({"id": {"a": 1}, "audio": "odd.wav", "text": "a"}, "'id' must be a string or a number, got an object"),
    ({"id": True, "audio": "odd.wav", "text": "a"}, "'id' must be a string or a number, got a boolean"),
    ({"id": "x", "audio": "odd.wav", "text": "a", "kind": 7}, "'kind' must be a string, got a number 7"),
    ({"id": "x", "audio": "odd.wav", "text": "a", "duration": "10"}, "'duration' must be a positive number"),
    ({"id": "x", "audio": "odd.wav", "text": "a", "duration": True}, "'duration' must be a positive number"),
    ({"id": "x", "audio": "odd.wav", "text": ["a"]}, "'text' must be a string, got a list"),
    ({"id": "x", "audio": 12, "text": "a"}, "'audio' must be a string, got a number 12"),
    ('{"id": "x", "audio": "odd.wav", "text": "lone \\ud800 surrogate"}', "'text' contains an unpaired UTF-16 surrogate"),
    ('{"id": "x\\udfff", "audio": "odd.wav", "text": "a"}', "'id' contains an unpaired UTF-16 surrogate"),
    ({"id": "x" * 1001, "audio": "odd.wav", "text": "a"}, "'id' is 1,001 characters long (at most 1,000)"),
    ({"id": "x", "audio": "odd\u0000.wav", "text": "a"}, "'audio' contains a NUL byte"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON (nested too deeply)"),
    ({"id": "good1", "audio": "odd.wav", "text": "a"}, "duplicate id 'good1'"),
    ({"id": "x", "audio": "../../../etc/passwd-not-here.wav", "text": "a"}, "not found (relative to"),
]


@pytest.mark.parametrize("line, message", MANIFEST_CASES, ids=[m[:40] for _, m in MANIFEST_CASES])
def test_a_hostile_manifest_line_is_one_clear_error(hostile, line, message):
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, [line]))
    assert message in text
    assert "1 input error(s)" in text
    assert_good_measured(hostile, text)


def test_long_ids_nul_bytes_and_a_megabyte_reference_are_measured_and_stored(hostile):
    """What PostgreSQL used to refuse (ids over 400 characters, NUL in text: the whole batch lost)
    and what made the repetition detector hang (a 1 MB repetitive reference) are all measured."""
    write_audio(hostile.path / "data" / "three.wav", 3.0)
    long_id = "L" * 600
    extra = [{"id": long_id, "audio": "odd.wav", "text": "something else"},
             {"id": "nul", "audio": "three.wav", "text": ("the cat sat on the mat " * 43_000) + "\u0000 end"}]
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, extra))
    rows = assert_good_measured(hostile, text)
    assert rows[long_id]["hits"] == 2
    assert rows["nul"]["reference"].endswith("\ufffd end") and rows["nul"]["hits"] is not None
    assert "repeated" not in rows["nul"]["hypothesis"]


def test_duplicate_ids_in_a_librispeech_folder(hostile):
    chapter = hostile.path / "libri" / "19" / "198"
    for name, seconds in (("19-198-0001", 1.0), ("19-198-0002", 2.0)):
        write_audio(chapter / f"{name}.flac", seconds, fmt="FLAC")
    (chapter / "19-198.trans.txt").write_text(
        "19-198-0001 THE CAT SAT ON THE MAT\n19-198-0002 HELLO WORLD\n19-198-0001 A SECOND TRANSCRIPT\n")
    result, text = run(hostile, "--speechlab-dataset", str(hostile.path / "libri"))
    assert "duplicate id '19-198-0001'" in text
    rows = stored(hostile)
    assert rows["19-198-0001"]["hypothesis"] == "the cat sat on the mat"
    assert rows["19-198-0002"]["hypothesis"] == "hello world" and rows["__status__"] == "complete"


# -- audio charged to the input, never to the model -----------------------------------------------

def _truncated_wav(path):
    write_audio(path, 1.5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _loud(path):
    sf.write(path, (np.ones(16000) * 1e6).astype(np.float32), 16000, subtype="FLOAT")


def _one_sample(path):
    sf.write(path, np.zeros(1, dtype=np.float32), 16000)


def _short_after_resampling(path):
    sf.write(path, np.zeros(40, dtype=np.float32), 8000)  # 5 ms


AUDIO_CASES = [
    (_truncated_wav, {}, "truncated WAV file: its header declares"),
    (_loud, {}, "samples far outside [-1, 1] (peak 1e+06)"),
    (_one_sample, {}, "audio is too short (1 sample(s) at 16000 Hz"),
    (_short_after_resampling, {}, "audio is too short (40 sample(s) at 8000 Hz"),
    (lambda p: write_audio(p, 1.5), {"duration": 9.0}, "decoded length 1.50 s differs from the declared duration 9.00 s"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk"), {}, "cannot decode audio"),
]


@pytest.mark.parametrize("make, fields, message", AUDIO_CASES, ids=[c[2][:30] for c in AUDIO_CASES])
def test_defective_audio_is_an_input_problem_with_its_file(hostile, make, fields, message):
    make(hostile.path / "data" / "bad.wav")
    result, text = run(hostile, "--speechlab-dataset",
                       manifest(hostile, [{"id": "bad", "audio": "bad.wav", "text": "a b", **fields}]))
    assert f"audio 'bad.wav': {message}" in text
    assert "model fake/hostile raised" not in text  # not charged to the model
    assert_good_measured(hostile, text)


# -- hostile model output ------------------------------------------------------------------------

OUTPUT_CASES = [
    ("surrogate", None, "model output held unpaired UTF-16 surrogates, replaced by U+FFFD"),
    ("nul", None, None),
    ("huge", None, "model output truncated from 10,000,000 to 100,000 characters"),
    ("escapes", None, None),
    ("not_text", "transcribe() must return a Transcript or str, got int", None),
    ("text_none", "returned a Transcript whose text is NoneType, not str", None),
    ("nan_segment", "segments that are not Segments with text and finite start/end", None),
    ("raise_escapes", "model fake/hostile raised RuntimeError: boom \\x1b[2J\\x1b]0;pwned\\x07", None),
    ("raise_bidi", "model fake/hostile raised RuntimeError: boom \\u202etxt.exe\\u2066", None),
]


@pytest.mark.parametrize("mode, error, note", OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_hostile_model_output(hostile, monkeypatch, mode, error, note):
    monkeypatch.setenv("HOSTILE_OUTPUT", mode)
    path = manifest(hostile, [{"id": "odd", "audio": "odd.wav", "text": "the quick brown fox"}])
    result, text = run(hostile, "--speechlab-dataset", path, "--speechlab-json", "run.json",
                       "--speechlab-markdown", "score.md")
    assert "\x1b" not in text and "\u202e" not in text  # no control character reached the terminal
    rows = assert_good_measured(hostile, text)
    if error:
        from pytest_speechlab._text import terminal

        assert error in text and error in terminal(rows["odd"]["error"])  # stored as it was, shown neutralized
    else:
        assert rows["odd"]["hypothesis"] is not None and "\x00" not in rows["odd"]["hypothesis"]
    if note:
        assert note in rows["odd"]["note"]
    run_file = json.loads((hostile.path / "run.json").read_text(encoding="utf-8"))  # valid UTF-8 JSON
    assert len(run_file["evaluations"][0]["utterances"]) == 3
    assert "\x1b" not in (hostile.path / "score.md").read_text(encoding="utf-8")


def test_a_hanging_model_hits_the_utterance_timeout(hostile, monkeypatch):
    monkeypatch.setenv("HOSTILE_OUTPUT", "hang")
    with open(hostile.path / "pyproject.toml", "a") as fh:
        fh.write("\n[tool.speechlab]\nutterance_timeout = 1.0\n")
    path = manifest(hostile, [{"id": "odd", "audio": "odd.wav", "text": "the quick brown fox"}])
    result, text = run(hostile, "--speechlab-dataset", path)
    assert "model fake/hostile: no result after 1 s (utterance_timeout)" in text
    assert_good_measured(hostile, text)


@pytest.mark.parametrize("variable, value, message", [
    ("HOSTILE_INFO", "raise", "loaded, but its info() failed: RuntimeError: info exploded"),
    ("HOSTILE_INFO", "list", "info() must return a dict, got list"),
])
def test_a_model_whose_info_fails_is_a_clear_load_failure(hostile, monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []))
    assert message in text and result.ret == 1


def test_a_model_whose_close_raises_keeps_the_run(hostile, monkeypatch):
    monkeypatch.setenv("HOSTILE_CLOSE", "raise")
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []))
    assert "close() raised RuntimeError: close exploded" in text
    assert_good_measured(hostile, text)


def test_escape_sequences_in_file_names_and_ids_are_neutralized(hostile):
    name = "odd\x1b[2J.wav"
    (hostile.path / "data" / "odd.wav").rename(hostile.path / "data" / name)
    path = manifest(hostile, [{"id": "id\x1b]0;pwned\x07", "audio": name, "text": "quick"},
                              {"id": "gone\x1b[31m", "audio": "gone\x1b[1m.wav", "text": "x"}])
    result, text = run(hostile, "--speechlab-dataset", path, "-rA")
    assert "\x1b" not in text and "\x07" not in text
    assert "gone\\x1b[1m.wav" in text
    assert_good_measured(hostile, text)


# -- reports and configuration -------------------------------------------------------------------

def test_a_report_path_that_cannot_be_written_is_a_usage_error_before_evaluation(hostile):
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []), "--speechlab-json", "no/such/dir/run.json")
    assert result.ret == 4 and "--speechlab-json no/such/dir/run.json: folder no/such/dir does not exist" in text


def test_a_report_that_fails_at_the_end_keeps_the_run_complete(hostile):
    """The path was fine at the start and became a folder during the run."""
    with open(hostile.path / "conftest.py", "a") as fh:
        fh.write("\n\nimport pytest\n\n@pytest.hookimpl(tryfirst=True)\ndef pytest_sessionfinish(session):\n"
                 "    import os\n    os.makedirs('late.json', exist_ok=True)\n")
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []), "--speechlab-json", "late.json")
    assert "--speechlab-json late.json: not written (IsADirectoryError" in text
    assert result.ret == 1
    assert_good_measured(hostile, text)


CONFIG_CASES = [
    ('[tool.speechlab.thresholds.models."fake/hostile"]\nwer = "low"\n', "wer must be a number, got a string 'low'"),
    ("[tool.speechlab.threshold]\nwer = 0.1\n", "unknown key 'threshold' (did you mean 'thresholds'?)"),
    ("[tool.speechlab]\nnormaliser = \"speechlab-english\"\n", "unknown key 'normaliser' (did you mean 'normalizer'?)"),
    ('[tool.speechlab.thresholds.models."fake/hostil"]\nwer = 0.1\n', "no model 'fake/hostil' is registered (did you mean 'fake/hostile'?)"),
    ("[tool.speechlab.hallucination]\ninsertion_run = []\n", "insertion_run must be an integer, got a list"),
    ('[tool.speechlab.models."fake/hostile"]\nmodel = "fake/hostile"\n', "'fake/hostile' is already a model of plugin"),
]


@pytest.mark.parametrize("toml, message", CONFIG_CASES, ids=[c[1][:30] for c in CONFIG_CASES])
def test_configuration_problems_are_usage_errors_naming_the_key(hostile, toml, message):
    with open(hostile.path / "pyproject.toml", "a") as fh:
        fh.write("\n" + toml)
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []))
    assert result.ret == 4 and message in text


def test_two_plugins_registering_one_model_name(hostile):
    (hostile.path / "suites" / "conftest.py").write_text(textwrap.dedent('''
        from pytest_speechlab import hookimpl

        @hookimpl
        def speechlab_register_models(register):
            register("fake/hostile", task="asr", load=lambda params: None)
    '''))
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []))
    assert result.ret == 4
    assert re.search(r"model 'fake/hostile' is registered by both plugin '[^']+' and plugin '[^']+'", text)


def test_a_local_model_name_that_is_not_a_path_never_reaches_a_hub(hostile):
    pytest.importorskip("speechlab_faster_whisper")
    with open(hostile.path / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.speechlab.models.hub-name]\nmodel = "faster-whisper/local"\nmodel_path = "Systran/faster-whisper-tiny"\n')
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []), "--speechlab-model", "hub-name")
    assert "is not a CTranslate2 Whisper folder that exists here" in text and "allow_download = true" in text


# -- the results database and the speechlab command ----------------------------------------------

def cli(*args: str, db: str):
    from click.testing import CliRunner

    from pytest_speechlab.cli import main as speechlab

    result = CliRunner().invoke(speechlab, ["--db", db, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("command", [["runs"], ["show", "latest"], ["compare", "latest", "latest"],
                                     ["export", "latest"], ["baseline", "list"]])
def test_read_only_commands_never_create_a_database(tmp_path, command):
    db = tmp_path / "never.db"
    result = cli(*command, db=str(db))
    assert result.exit_code == 2 and f"no results database at {db}" in result.output
    assert not db.exists() and not list(tmp_path.iterdir())


def test_read_only_commands_do_not_write_to_an_existing_database(tmp_path):
    import hashlib

    import sqlalchemy as sa

    from pytest_speechlab.sinks.store import Store

    db = tmp_path / "old.db"
    store = Store(f"sqlite:///{db}")
    run_id = store.start_run({})
    store.finish_run(run_id)
    with store.engine.begin() as conn:  # pretend an older pytest-speechlab wrote it
        conn.execute(sa.text("UPDATE schema_version SET version = 1"))
    store.engine.dispose()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for command in (["runs"], ["show", "latest"], ["export", "latest"], ["baseline", "list"]):
        assert cli(*command, db=str(db)).exit_code == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert Store(f"sqlite:///{db}", read_only=True).schema_version == 1  # not migrated


@pytest.mark.parametrize("content, message", [
    (b"this is not a database at all" * 100, "file is not a database"),
    (b"", "is not a pytest-speechlab results database"),
])
def test_a_damaged_database_is_a_clear_error(tmp_path, content, message):
    db = tmp_path / "damaged.db"
    db.write_bytes(content)
    result = cli("runs", db=str(db))
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON run export (JSONDecodeError"),
    ("[1, 2]", "not a pytest-speechlab run export (format 'list'"),
    ('{"format": "pytest-speechlab-run/1", "run": {"started_at": "x", "status": "complete"}}',
     "run 'id' must be a string of 1-36 characters"),
    ('{"format": "pytest-speechlab-run/1", "run": {"id": "r1", "started_at": "x", "status": "complete", '
     '"utterances": [5]}}', "'utterances' must be a list of objects"),
    ('{"format": "pytest-speechlab-run/1", "run": {"id": "r1", "started_at": "x", "status": "complete", '
     '"utterances": [{"model": "m", "dataset": "d", "utterance_id": "u", "evil": 1}]}}', "unknown field(s) ['evil']"),
    ('{"format": "pytest-speechlab-run/1", "run": {"id": "r1", "started_at": "x", "status": "complete", '
     '"utterances": [{"model": 5, "dataset": "d", "utterance_id": "u"}]}}', "'model' must be a string"),
])
def test_import_rejects_a_malformed_file_with_one_clear_message(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    db = tmp_path / "r.db"
    result = cli("import", str(tmp_path / "bad.json"), db=str(db))
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert cli("runs", db=str(db)).output.startswith("no runs in")


def test_credentials_never_appear_in_output_reports_database_or_exports(hostile, monkeypatch):
    """A password in the database URL: redacted in the terminal, warnings, reports, the run's
    recorded arguments and `speechlab export`. On PostgreSQL the run really is recorded (the test
    server trusts local connections, so any password is accepted); on SQLite the URL points at a
    server that is not there, and only the warning can leak it."""
    secret = "S3cret-Pw-42"
    if hostile.db_url.startswith("postgresql"):
        url = hostile.db_url.replace("://speechlab@", f"://speechlab:{secret}@")
        assert secret in url
    else:
        url = f"postgresql+psycopg://speechlab:{secret}@127.0.0.1:9/none"
    hostile.db_url = url
    result, text = run(hostile, "--speechlab-dataset", manifest(hostile, []), "--speechlab-json", "run.json",
                       "--speechlab-markdown", "score.md", "--speechlab-benchmark-json", "bench.json")
    outputs = [text] + [(hostile.path / f).read_text() for f in ("run.json", "score.md", "bench.json")]
    if url.endswith("/none"):
        assert "results database not written" in text
    else:
        assert_good_measured(hostile, text)
        exported = cli("export", "latest", db=url).output
        assert "--speechlab-db" in exported and "speechlab:***@" in exported
        outputs += [exported, cli("runs", db=url).output, cli("show", "latest", db=url).output]
    for output in outputs:
        assert secret not in output
