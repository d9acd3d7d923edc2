"""Throughput: worker processes, batches, their faults, and what pytest-xdist is told.

The fake model recognizes a clip by its length; its loader is a module-level function, so that the
spawned worker processes can import it, as they import an installed plugin's."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
import types
from collections import Counter
from pathlib import Path

import pytest

from helpers import FAKE_MODEL_CONFTEST, write_audio, write_manifest
from pytest_speechlab import SpeechlabError, Transcript, evaluate_models, hookimpl

TEXTS = {"1.00": "the cat sat on the mat", "1.50": "a quick brown fox", "2.00": "hello world"}
LENGTHS = ("1.00", "1.50", "2.00")


class Length:
    sample_rate = 16000

    def __init__(self, params: dict) -> None:
        self.params = params

    def _text(self, audio) -> str:
        time.sleep(self.params.get("delay", 0))  # long enough for every worker to get work
        seconds = f"{len(audio) / 16000:.2f}"
        if seconds == self.params.get("kill_on"):
            marker = Path(self.params["marker"])
            if self.params.get("always") or not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer or a crash does
        return TEXTS.get(seconds, "")

    def transcribe(self, audio):
        return Transcript(self._text(audio))

    def transcribe_batch(self, audios):
        if self.params.get("batch_fails"):
            raise RuntimeError("out of memory in the batch")
        return [Transcript(self._text(a)) for a in audios]

    def info(self):
        return {"threads": int(os.environ.get("SPEECHLAB_THREADS", "0")) or None, "backend_version": "length 1"}


def load_length(params: dict) -> Length:
    if params.get("fail_in_worker") and multiprocessing.parent_process() is not None:
        raise RuntimeError("no such device in the worker")
    return Length(params)


@hookimpl
def speechlab_register_models(register):
    register("length/asr", task="asr", load=load_length, backend="length")


PLUGIN = types.SimpleNamespace(speechlab_register_models=speechlab_register_models)


def dataset(root: Path, n: int = 12) -> str:
    lines = []
    for i in range(n):
        seconds = float(LENGTHS[i % 3])
        write_audio(root / f"u{i:02d}.wav", seconds)
        lines.append({"id": f"u{i:02d}", "audio": f"u{i:02d}.wav", "text": TEXTS[LENGTHS[i % 3]]})
    return str(write_manifest(root / "manifest.jsonl", lines))


def project(tmp_path: Path, **params) -> Path:
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool) else f"{k} = {str(v).lower()}"
                     for k, v in params.items())
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[tool.speechlab.models.length-x]\nmodel = "length/asr"\n{body}\n')
    return pyproject


def evaluate(tmp_path, workers=1, model="length-x", **params):
    return evaluate_models([model], [dataset(tmp_path / "data")], pyproject=project(tmp_path, **params),
                           plugins=[PLUGIN], workers=workers)


def texts(result) -> dict[str, str]:
    return {u.utterance.id: u.hypothesis for u in result.utterances}


def test_two_workers_give_the_serial_transcripts_each_utterance_once(tmp_path):
    (serial,) = evaluate(tmp_path / "s")
    (parallel,) = evaluate(tmp_path / "p", workers=2, delay=0.2)
    assert texts(parallel) == texts(serial) and parallel.wer == serial.wer == 0.0
    assert Counter(u.utterance.id for u in parallel.utterances) == Counter(texts(serial).keys())  # none twice
    assert {u.worker for u in parallel.utterances} == {"w1", "w2"}  # both worked
    assert {u.threads for u in parallel.utterances} == {max(1, (os.cpu_count() or 1) // 2)}  # a share each
    assert serial.utterances[0].worker == "" and serial.workers == 1 and parallel.workers == 2
    summary = parallel.summary()
    assert summary["throughput"] and summary["wall_seconds"] > 0  # audio s per wall s, not summed times
    row = parallel.utterances[0].row()
    assert row["worker"] in ("w1", "w2") and row["batch_size"] == 1


def test_a_worker_killed_mid_run_loses_nothing_and_counts_nothing_twice(tmp_path):
    marker = tmp_path / "killed"
    (result,) = evaluate(tmp_path, workers=2, kill_on="1.50", marker=str(marker), delay=0.2)
    assert marker.exists()  # a worker was SIGKILLed on a 1.50 s clip
    ids = [u.utterance.id for u in result.utterances]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert not result.errors and result.wer == 0.0  # the lost unit ran again elsewhere
    assert len({u.worker for u in result.utterances}) >= 2


def test_a_worker_that_dies_on_every_try_fails_that_utterance_only(tmp_path, monkeypatch):
    (result,) = evaluate(tmp_path, workers=2, kill_on="2.00", marker=str(tmp_path / "m"), always=True, delay=0.1)
    failed = [u for u in result.utterances if u.error]
    assert {u.utterance.id for u in failed} == {f"u{i:02d}" for i in range(2, 12, 3)}  # the 2.00 s clips
    assert all("worker process died 3 times" in u.error.message for u in failed)
    assert len([u for u in result.utterances if u.hypothesis]) == 8


def test_a_model_that_fails_to_load_in_a_worker_is_reported_once(tmp_path):
    with pytest.raises(SpeechlabError, match=r"failed to load: RuntimeError: no such device in the worker \(in worker process w\d"):
        evaluate(tmp_path, workers=2, fail_in_worker=True)


def test_batches_share_their_time_by_audio_length_and_record_their_size(tmp_path):
    (serial,) = evaluate(tmp_path / "s")
    (batched,) = evaluate(tmp_path / "b", batch_size=4)
    assert texts(batched) == texts(serial)
    assert {u.batch_size for u in batched.utterances} == {4}
    by_length = {}
    for u in batched.utterances:  # sorted by length, a batch holds clips of one length here
        by_length.setdefault(round(u.audio_seconds, 2), set()).add(round(u.processing_seconds / u.audio_seconds, 9))
    assert all(len(rates) <= 2 for rates in by_length.values())
    assert list(batched.summary()["rtf_by_batch_size"]) == ["4"]
    assert batched.environment["batch_size"] == 4 and "per batch" in batched.environment["timing"]


def test_a_failed_batch_is_decoded_one_clip_at_a_time_and_says_so(tmp_path):
    (result,) = evaluate(tmp_path, batch_size=4, batch_fails=True)
    assert result.wer == 0.0 and all("its batch of 4 failed" in u.note for u in result.utterances)
    assert {u.batch_size for u in result.utterances} == {1}


def test_batch_size_without_a_batch_method_fails_at_load(tmp_path):
    from pytest_speechlab.engine.runner import ModelLoadError

    class NoBatch:
        sample_rate = 16000

        def transcribe(self, audio):
            return ""

    def register(register):
        register("nobatch/asr", task="asr", load=lambda params: NoBatch())

    plugin = types.SimpleNamespace(speechlab_register_models=hookimpl(register))
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.speechlab.models.nb]\nmodel = "nobatch/asr"\nbatch_size = 8\n')
    with pytest.raises(ModelLoadError, match="batch_size 8 and no batch method"):
        evaluate_models(["nb"], [dataset(tmp_path / "d", 3)], pyproject=pyproject, plugins=[plugin])


def test_a_loader_that_cannot_reach_a_worker_is_a_clear_error(tmp_path):
    def register(register):
        register("local/asr", task="asr", load=lambda params: Length(params))

    plugin = types.SimpleNamespace(speechlab_register_models=hookimpl(register))
    with pytest.raises(SpeechlabError, match="cannot be sent to worker processes"):
        evaluate_models(["local/asr"], [dataset(tmp_path / "d", 3)], pyproject=None, plugins=[plugin], workers=2)


def test_pytest_xdist_is_refused_with_the_way_to_parallelize(pytester):
    pytester.makeconftest(FAKE_MODEL_CONFTEST)
    pytester.makepyfile(test_x="def test_x(speechlab_model):\n    pass\n")
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--speechlab-model", "fake/perfect")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=1)  # a test without the plugin's fixtures runs under -n
    result.stdout.fnmatch_lines(["*pytest-xdist (-n) would build every model in every xdist worker*"
                                 "use --speechlab-workers N*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_the_batch_equivalence_suite_passes_equal_batches_and_lists_what_differs(speechlab_project):
    same = speechlab_project.runpytest("suites/test_batch_equivalence.py", "--speechlab-no-db",
                                       "--speechlab-model", "fake/batchy", "--speechlab-batch-equivalence", "2")
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines(["*batch equivalence: fake/batchy at batch 2 against batch 1*",
                               "*transcripts (normalized) identical on 4/4*"])
    drift = speechlab_project.runpytest("suites/test_batch_equivalence.py", "--speechlab-no-db",
                                        "--speechlab-model", "fake/batch-drift", "--speechlab-batch-equivalence", "2")
    drift.assert_outcomes(failed=1)
    drift.stdout.fnmatch_lines(["*batch 2 differs from batch 1 on 1/4 utterances (0.250, limit 0.1)*",
                                "*c: batch 1 'hello world' / batch 2 'hello word'*"])
    off = speechlab_project.runpytest("suites/test_batch_equivalence.py", "--speechlab-no-db",
                                      "--speechlab-model", "fake/batchy")
    off.assert_outcomes()  # deselected without --speechlab-batch-equivalence
    assert "1 deselected" in off.stdout.str()


def test_ray_not_installed_is_a_clear_message_with_the_install_command(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(SpeechlabError, match=r'needs Ray, which is not installed: pip install "pytest-speechlab\[ray\]"'):
        evaluate_models(["length-x"], [dataset(tmp_path / "data", 3)], pyproject=project(tmp_path),
                        plugins=[PLUGIN], workers=2, executor="ray")


class Polyglot(Length):
    heard: list = []

    def transcribe(self, audio, language=None):
        Polyglot.heard.append(language)
        return Transcript(self._text(audio), language=language or "en")


def load_polyglot(params: dict) -> Polyglot:
    return Polyglot(params)


def test_language_dataset_passes_each_utterances_language_to_the_model(tmp_path):
    root = tmp_path / "data"
    lines = []
    for i, language in enumerate(["fr-FR", "de", None]):
        write_audio(root / f"u{i}.wav", 1.0)
        lines.append({"id": f"u{i}", "audio": f"u{i}.wav", "text": TEXTS["1.00"], **({"language": language} if language else {})})
    manifest = str(write_manifest(root / "manifest.jsonl", lines))

    def register(register):
        register("polyglot/asr", task="asr", load=load_polyglot)

    plugin = types.SimpleNamespace(speechlab_register_models=hookimpl(register))
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.speechlab.models.hinted]\nmodel = "polyglot/asr"\nlanguage = "dataset"\n')
    Polyglot.heard = []
    (hinted,) = evaluate_models(["hinted"], [manifest], pyproject=pyproject, plugins=[plugin])
    assert Polyglot.heard[1:] == ["fr", "de", None]  # after the warm-up: base codes, none where the manifest has none
    assert hinted.language_id == {"correct": 2, "total": 2, "accuracy": 1.0, "ci": hinted.language_id["ci"]}
    Polyglot.heard = []
    (plain,) = evaluate_models(["polyglot/asr"], [manifest], pyproject=pyproject, plugins=[plugin])
    assert set(Polyglot.heard) == {None}  # no hint without language = "dataset"
    assert [f.kind for u in plain.utterances for f in u.findings] == ["wrong_language", "wrong_language"]
    detected = [u["detected_language"] for u in plain.serialized()["utterances"]]
    assert detected == ["en", "en", "en"]


def test_language_dataset_on_a_model_that_takes_no_language_fails_at_load(tmp_path):
    from pytest_speechlab.engine.runner import ModelLoadError

    pyproject = project(tmp_path, language="dataset")
    with pytest.raises(ModelLoadError, match='language = "dataset" but its transcribe\\(\\) takes no language='):
        evaluate_models(["length-x"], [dataset(tmp_path / "data", 3)], pyproject=pyproject, plugins=[PLUGIN])


def test_the_cache_key_holds_the_threads_each_worker_computed_with(tmp_path):
    """A thread count can change a transcript, so it is part of an output's key: the workers' share,
    not what the session's own instance reports."""
    db, manifest, pyproject = str(tmp_path / "r.db"), dataset(tmp_path / "data"), project(tmp_path)

    def run(**executor):
        (result,) = evaluate_models(["length-x"], [manifest], pyproject=pyproject, plugins=[PLUGIN], db=db, retime=0,
                                    workers=2, **executor)
        return result

    assert run(threads=1).cached_count == 0
    again = run(threads=1)
    assert again.cached_count == 12 and texts(again) == texts(run(threads=1))
    assert run(threads=2).cached_count == 0  # two threads each: computed again
