"""Speed is judged only on timings that hold: contention is measured while a model is timed, and on
a busy machine the speed checks neither fail nor pass ("not judged"), the grade leaves speed out,
and a comparison across machines says so."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_speechlab import _machine
from pytest_speechlab.compare import Side, compare
from pytest_speechlab.metrics.results import EvalResult

BUSY_CONFTEST = '''
import time
from pytest_speechlab import hookimpl, Transcript

class Spinner:
    """Spends 0.15 s of CPU on every clip (one thread), then says what the clip is."""
    sample_rate = 16000

    def transcribe(self, audio):
        end = time.process_time() + 0.15
        while time.process_time() < end:
            pass
        return Transcript({"1.00": "the cat sat on the mat", "1.50": "a quick brown fox",
                           "2.00": "hello world"}.get(f"{len(audio) / 16000:.2f}", ""))

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "spinner 1"}

@hookimpl
def speechlab_register_models(register):
    register("test/spinner", task="asr", load=lambda params: Spinner(), backend="test")
'''


def _probe(monkeypatch, stats, own, walls):
    """A ContentionProbe over made-up readings: (busy, total, cpus) jiffies, own CPU seconds, wall seconds."""
    stats, own, walls = iter(stats), iter(own), iter(walls)
    monkeypatch.setattr(_machine, "_proc_stat", lambda: next(stats))
    monkeypatch.setattr(_machine, "_own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(_machine, "_psi_some", lambda: None)
    monkeypatch.setattr(_machine.time, "monotonic", lambda: next(walls))
    return _machine.ContentionProbe()


def test_contention_is_the_cpu_others_took_of_the_machine(monkeypatch):
    # 2 CPUs, 10 s: 2000 jiffies; the machine was busy 1000, of which this process tree 9 CPU s
    quiet = _probe(monkeypatch, [(0, 0, 2), (1000, 2000, 2)], [0.0, 9.0], [0.0, 10.0]).finish()
    assert quiet["machine_busy_share"] == 0.5 and quiet["own_share"] == 0.45
    assert quiet["others_share"] == pytest.approx(0.05) and not quiet["busy"]
    busy = _probe(monkeypatch, [(0, 0, 2), (1900, 2000, 2)], [0.0, 6.0], [0.0, 10.0]).finish()
    assert busy["others_share"] == pytest.approx(0.65) and busy["busy"]
    assert "other processes used 65% of the 2 CPUs over 10.0 s (tolerance 25%)" in _machine.contention_text(busy)
    strict = _probe(monkeypatch, [(0, 0, 2), (1000, 2000, 2)], [0.0, 9.0], [0.0, 10.0]).finish(tolerance=0.01)
    assert strict["busy"]  # the tolerance is [tool.speechlab] busy_tolerance
    short = _probe(monkeypatch, [(0, 0, 2), (10, 20, 2)], [0.0, 0.0], [0.0, 0.5]).finish()
    assert short["others_share"] is None and not short["busy"] and "too short" in short["method"]


def test_the_probe_reads_this_machine():
    probe = _machine.ContentionProbe()
    out = probe.finish()
    assert set(out) >= {"wall_s", "tolerance", "busy", "others_share", "method"}
    if _machine._proc_stat() is not None:
        assert _machine._own_cpu_seconds() > 0


def _result(busy: bool) -> EvalResult:
    from pytest_speechlab._types import Transcript, Utterance
    from pytest_speechlab.metrics.results import UtteranceResult

    u = UtteranceResult(Utterance("a", "a.wav", "hi"), "hi", Transcript("hi"), audio_seconds=10.0, processing_seconds=30.0,
                        cpu_seconds=6.0)
    contention = {"busy": busy, "others_share": 0.7 if busy else 0.02, "cpus": 2, "wall_s": 31.0, "tolerance": 0.25}
    return EvalResult("m", "d", "n", [u], contention=contention, environment={"cpu": "X"})


def test_busy_speed_is_not_judged_and_the_grade_leaves_it_out():
    from pytest_speechlab import SpeedNotJudged, check_below
    from pytest_speechlab.grading import grade_model

    busy, quiet = _result(True), _result(False)
    with pytest.raises(SpeedNotJudged) as skipped:
        check_below(busy, "rtf", 1.0)
    assert ("the machine was busy (other processes used 70% of the 2 CPUs over 31.0 s (tolerance 25%); "
            "the model's calls got 0.20 CPU s per wall s); its RTF 3.000") in str(skipped.value)
    with pytest.raises(AssertionError, match="RTF 3.0000 > threshold 1.0000"):
        check_below(quiet, "rtf", 1.0)
    assert "RTF limits not judged on d (the machine was busy while it was timed)" in grade_model("m", [busy]).reason
    assert "RTF 3.000 on d > " in grade_model("m", [quiet]).reason


def test_a_comparison_across_machines_says_so_and_does_not_judge_rtf():
    def side(cpu, threads, rtf, version):
        s = Side("run", "m", "d", words={"a": (1, 10)}, hypotheses={"a": "x"}, processing_seconds=rtf,
                 audio_seconds=1.0, cpu=cpu, identity={"backend_version": version},
                 environment={"cpu": cpu, "threads": threads, "arch": "x86_64"})
        return s

    moved = compare(side("Intel Xeon", 2, 0.2, "ct2 4.7"), side("AMD EPYC", 4, 0.9, "ct2 4.8"))
    assert moved.machine_changes == ["CPU Intel Xeon -> AMD EPYC", "threads 2 -> 4", "backend version ct2 4.7 -> ct2 4.8"]
    report = moved.report()
    assert "machine changed: CPU Intel Xeon -> AMD EPYC, threads 2 -> 4" in report
    assert "RTF is not comparable across these" in report and "transcripts may differ too" in report
    assert "RTF not judged: the baseline ran elsewhere" in report and moved.regressions == []
    same = compare(side("AMD EPYC", 2, 0.2, "ct2 4.8"), side("AMD EPYC", 2, 0.9, "ct2 4.8"))
    assert same.machine_changes == [] and "machine changed" not in same.report()
    assert any(r.startswith("RTF 0.200 -> 0.900") for r in same.regressions)


def test_the_main_job_on_a_busy_machine_does_not_judge_speed(pytester):
    """Four CPU-bound processes run beside the evaluation: exit 0, speed not judged (busy), with the
    figures measured; the grade says so."""
    pytester.makeconftest(BUSY_CONFTEST)
    pytester.makepyfile(test_speed="""
from pytest_speechlab import check_below

def test_real_time_factor(speechlab_eval, speechlab_thresholds):
    check_below(speechlab_eval, "rtf", speechlab_thresholds["rtf"])
""")
    from helpers import SMALL_SAMPLES_TOML, make_fake_dataset

    pytester.makepyprojecttoml(SMALL_SAMPLES_TOML)  # graded on the fake dataset's 3 clips
    manifest = make_fake_dataset(pytester.path / "data")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    try:
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-rs", "--speechlab-model", "test/spinner", "--speechlab-dataset", str(manifest),
            "--speechlab-no-db", "--speechlab-repeat", "3")
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    out = result.stdout.str()
    assert result.ret == 0, out
    result.assert_outcomes(skipped=1)
    assert "speed not judged for test/spinner on data/manifest.jsonl: the machine was busy (other processes used" in out
    assert "RTF limits not judged on data/manifest.jsonl (the machine was busy while it was timed)" in out
