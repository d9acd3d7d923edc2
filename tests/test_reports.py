"""Reports: hostile model output stays text in every renderer; benchmark JSON is read by
pytest-benchmark; the HTML report works in a real browser (skips when none is installed)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from helpers import REPO, SMALL_SAMPLES, write_audio
from pytest_speechlab import Grade, Output, Segment, Transcript, Utterance, evaluate, get_normalizer
from pytest_speechlab.sinks.report import (
    AudioBudget,
    benchmark_json,
    evidence_html,
    md,
    run_file,
    scorecard_html,
    scorecard_markdown,
)

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '"><img src=x onerror="window.__pwned = 1">',
    "| injected | cells |\n# heading",
    "[click](javascript:alert(1)) *bold* `code`",
]


def hostile_result(tmp_path):
    audio = write_audio(tmp_path / "a.wav", 1.0)
    outputs = []
    for i, text in enumerate(HOSTILE):
        utt = Utterance(f"id{i}{HOSTILE[i][:10]}", str(audio), "hello world", "speech",
                        source=f"<b>m.jsonl</b> line {i}")
        outputs.append(Output(utt, Transcript(text, (Segment(0, 1, text),)), 0.1, 1.0))
    result = evaluate('<img src=x onerror=alert(1)>model', "<i>data</i>", outputs, get_normalizer())
    return result, {result.model: Grade(result.model, "C", "reason " + HOSTILE[1], False)}


def test_html_renderers_escape_untrusted_text(tmp_path):
    result, grades = hostile_result(tmp_path)
    page = scorecard_html([result.serialized()], grades) + evidence_html(result.serialized(), AudioBudget())
    assert "<script>window" not in page and "<img src=x" not in page and 'onerror="' not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;model" in page
    assert "&lt;b&gt;m.jsonl&lt;/b&gt;" in page


def test_markdown_escapes_untrusted_text(tmp_path):
    result, grades = hostile_result(tmp_path)
    text = scorecard_markdown([result.serialized()], grades)
    assert "<img" not in text and "<script" not in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == table[0].count(" | ") for line in table)  # no injected cells
    assert md("a|b\n# c") == "a\\|b \\# c"


def test_junit_properties_escape_untrusted_text(speechlab_project):
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace('"hello world"', repr(HOSTILE[1] + " " + HOSTILE[0])))
    speechlab_project.runpytest("suites/test_asr_accuracy.py", "--junitxml", "junit.xml")
    xml_text = (speechlab_project.path / "junit.xml").read_text()
    root = ET.fromstring(xml_text)  # well-formed
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["speechlab_model"] == "fake/perfect" and float(props["speechlab_wer"]) > 0
    assert "<script>" not in xml_text and "<img" not in xml_text


def test_audio_is_embedded_within_budget_once_per_clip_and_linked_beyond(tmp_path):
    clip = write_audio(tmp_path / "a.wav", 1.0)  # 32 kB
    other = write_audio(tmp_path / "b.wav", 1.0)
    budget = AudioBudget(budget=40_000)
    first = budget.player(str(clip))
    assert "data:audio/wav;base64," in first and 'id="speechlab-clip-1"' in first
    again = budget.player(str(clip))  # the same clip again: a link to its player, not a second copy
    assert "data:" not in again and 'href="#speechlab-clip-1"' in again
    linked = budget.player(str(other))  # over budget: a file link
    assert "data:" not in linked and "file://" in linked


def test_audio_player_escapes_a_hostile_file_name(tmp_path):
    name = 'clip.x"><img src=x onerror=alert(1)>'
    clip = write_audio(tmp_path / "c.wav", 0.5)
    hostile = tmp_path / name
    clip.rename(hostile)
    embedded = AudioBudget().player(str(hostile))
    assert "data:application/octet-stream;base64," in embedded  # the MIME type never comes from the name
    linked = AudioBudget(budget=0).player(str(hostile))
    assert set(re.findall(r"<(\w+)", linked)) == {"audio", "a"}  # no element but the player and its link
    assert "&lt;img src=x onerror=alert(1)&gt;" in linked  # the name, as text


def test_benchmark_json_is_read_by_pytest_benchmark_compare(tmp_path):
    result, grades = hostile_result(tmp_path)
    path = tmp_path / "0001_speechlab.json"
    data = benchmark_json([result.serialized()], grades, {"node": "x", "cpu": {"brand_raw": "cpu"}})
    path.write_text(json.dumps(data))
    bench = data["benchmarks"][0]
    assert bench["stats"]["rounds"] == 4 and bench["extra_info"]["wer"] == result.wer
    assert bench["extra_info"]["grade"] == "C"
    cli = os.path.join(os.path.dirname(sys.executable), "pytest-benchmark")
    out = subprocess.run([cli, "compare", str(path), "--columns=min,mean,rounds"], capture_output=True, text=True)
    text = out.stdout + out.stderr  # the table goes to stderr
    assert out.returncode == 0, text
    assert "speechlab[" in text and "Mean" in text and "Rounds" in text


def test_run_file_has_every_utterance_output(tmp_path):
    result, grades = hostile_result(tmp_path)
    data = json.loads(json.dumps(run_file([result.serialized()], grades, {"run_id": None})))
    utts = data["evaluations"][0]["utterances"]
    assert [u["hypothesis"] for u in utts] == HOSTILE
    assert utts[0]["alignment"] and utts[0]["reference_normalized"] == "hello world"


def test_markdown_goes_to_the_github_step_summary(speechlab_project, monkeypatch):
    summary = speechlab_project.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    speechlab_project.runpytest("suites/test_asr_speed.py", "--speechlab-markdown", "score.md")
    assert "| fake/perfect | data/manifest.jsonl |" in summary.read_text()
    assert summary.read_text() == (speechlab_project.path / "score.md").read_text()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# After the page's own scripts have run, the probe puts into the title whether injected code ran
# (window.__pwned), how many injected <img src=x> exist, and how many injected handlers or scripts.
PROBE = (
    "<script>setTimeout(function(){var bad=0;document.querySelectorAll('*').forEach(function(e){"
    "for(var i=0;i<e.attributes.length;i++){var a=e.attributes[i];"
    "if(a.name.indexOf('on')===0&&a.value.indexOf('__pwned')>=0)bad++;}"
    "if(e.tagName==='SCRIPT'&&e.textContent.indexOf('window.__pwned')===0)bad++;});"
    "document.title='pwned='+(window.__pwned===1)+';imgs='+document.querySelectorAll('img[src=\"x\"]').length"
    "+';injected='+bad},800)</script></body>")
CLEAN = ">pwned=false;imgs=0;injected=0</title>"


def rendered(report) -> str:
    """The report's DOM after headless Chromium ran its scripts and the probe."""
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", PROBE))
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--virtual-time-budget=4000",
         f"--user-data-dir={report.parent / 'chrome'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert 'id="speechlab-scorecard"' in out.stdout, out.stderr[-2000:]
    return out.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_html_report_in_a_real_browser(speechlab_project):
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace(
        '"hello world"', repr(HOSTILE[0] + " " + HOSTILE[1])))
    speechlab_project.runpytest("suites", "--html", "report.html", "--self-contained-html")
    dom = rendered(speechlab_project.path / "report.html")
    assert CLEAN in dom, re.search(r"<title[^>]*>pwned.*?</title>", dom).group()
    assert "<audio" in dom  # the failing WER test's evidence carries a player
    assert "<script>window.__pwned" not in dom


PAYLOAD = '"><img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'

EVERYWHERE_CONFTEST = r'''
from pytest_speechlab import hookimpl, Transcript, Segment

P = PAYLOAD_REPR

class Evil:
    sample_rate = 16000

    def transcribe(self, audio):
        seconds = len(audio) / self.sample_rate
        if seconds > 1.7:
            raise RuntimeError("raised " + P)
        return Transcript("hyp " + P + " hyp", (Segment(0.0, seconds + 5.0, "seg " + P),))

    def info(self):
        return {"threads": "t" + P, "device": "cpu" + P, "backend_version": "v" + P, "weights_path": "w" + P}

@hookimpl
def speechlab_register_models(register):
    register("evil/" + P, task="asr", load=lambda params: Evil(), backend="b" + P, weights="w" + P)
'''


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_no_injected_element_runs_with_hostile_values_in_every_field(pytester, monkeypatch):
    """Hostile text in every field a manifest, a file name, a model or configuration can set: the
    model name, its info() values, the dataset folder, the audio file name, the id, the reference,
    the transcript, a segment, an exception message. Rendered by pytest-html in headless Chromium:
    no injected element exists in the DOM and no injected handler or script ran."""
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(EVERYWHERE_CONFTEST.replace("PAYLOAD_REPR", repr(PAYLOAD)))
    folder = pytester.path / f"data{PAYLOAD.replace('/', '')}"
    audio = f"clip{PAYLOAD.replace('/', '')}.wav"
    write_audio(folder / audio, 1.0)
    write_audio(folder / "two.wav", 1.5)
    write_audio(folder / "three.wav", 2.0)
    (folder / "m.jsonl").write_text("\n".join(json.dumps(line) for line in [
        {"id": "id" + PAYLOAD, "audio": audio, "text": "ref " + PAYLOAD},
        {"id": "ns" + PAYLOAD, "audio": "two.wav", "kind": "nonspeech"},
        {"id": "raises" + PAYLOAD, "audio": "three.wav", "text": "x"},
        {"id": "missing" + PAYLOAD, "audio": "gone" + PAYLOAD.replace("/", "") + ".wav", "text": "x"},
    ]) + "\n")
    suites = pytester.mkdir("suites")
    for suite in ("test_asr_accuracy.py", "test_hallucination.py", "test_inputs.py"):
        (suites / suite).write_text((REPO / "suites" / suite).read_text())
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\naddopts = "--import-mode=importlib"\n')
    pytester.runpytest("suites", "--speechlab-no-db", "--speechlab-model", "evil/" + PAYLOAD,
                       "--speechlab-dataset", str(folder / "m.jsonl"), "--html", "report.html", "--self-contained-html")
    dom = rendered(pytester.path / "report.html")
    assert "Evidence: evil/" in dom  # the evidence section rendered, hostile values as text
    assert CLEAN in dom, re.search(r"<title[^>]*>pwned.*?</title>", dom).group()


def test_a_failing_value_is_never_marked_best(tmp_path):
    audio = write_audio(tmp_path / "a.wav", 1.0)

    def result(model, hypothesis):
        utt = Utterance("u", str(audio), "one two three four", "speech", source="m line 1")
        return evaluate(model, "d", [Output(utt, Transcript(hypothesis), 0.1, 1.0)], get_normalizer(),
                        min_samples=SMALL_SAMPLES)  # one clip: judged here to test the marking

    results = [result("fast-but-wrong", "one"), result("slow-but-right", "one two three four")]
    results[1].utterances[0].processing_seconds = 5.0  # RTF 5: fails rtf 1.0
    thresholds = {"fast-but-wrong": {"wer": 0.5, "rtf": 1.0}, "slow-but-right": {"wer": 0.5, "rtf": 1.0}}
    page = scorecard_html([r.serialized() for r in results], {}, thresholds, {"run": "r-1", "commit": "abc123"})
    rows = re.findall(r"<tr><td class=\"t\">(.*?)</tr>", page)
    wrong = next(r for r in rows if r.startswith("fast-but-wrong"))
    right = next(r for r in rows if r.startswith("slow-but-right"))
    assert 'class="failing"' in wrong and 'class="best"' not in wrong.split("</td>")[3]  # its WER fails
    assert 'class="best"' in right.split("</td>")[3]  # the passing WER is the best one
    assert 'class="failing"' in right.split("</td>")[6]  # its RTF fails, though it is not the fastest
    assert "<dt>run</dt><dd>r-1</dd>" in page and "<dd>abc123</dd>" in page
    # by the default minimum sample one clip is too few to judge: its WER is shown, not marked failing
    one = evaluate("fast-but-wrong", "d", [Output(results[0].utterances[0].utterance, Transcript("one"), 0.1, 1.0)])
    row = next(r for r in re.findall(r"<tr><td class=\"t\">(.*?)</tr>", scorecard_html([one.serialized()], {}, thresholds)))
    assert "WER 0.750" in row and 'class="failing"' not in row.split("</td>")[3]


def test_a_green_run_carries_its_evidence_once_with_each_clip_once(speechlab_project):
    """No failing test: the report still shows each evaluation's worst utterances and findings."""
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace('"hello world"', '"hello word"'))  # one error, WER 1/12
    with open(speechlab_project.path / "pyproject.toml", "a") as fh:
        fh.write("\n[tool.speechlab.thresholds.models.\"fake/perfect\"]\nwer = 0.5\ncer = 0.5\n")
    result = speechlab_project.runpytest("suites", "--html", "report.html", "--self-contained-html")
    assert result.parseoutcomes().get("failed", 0) == 0
    page = (speechlab_project.path / "report.html").read_text()
    assert page.count("Evidence: fake/perfect on data/manifest.jsonl") == 1
    assert "worst 1 by errors" in page
    players = re.findall(r'<audio id=\\?"speechlab-clip-(\d+)\\?"', page)
    assert len(players) == len(set(players)) >= 1
    assert 'id=\\"speechlab-run\\"' in page or 'id="speechlab-run"' in page
