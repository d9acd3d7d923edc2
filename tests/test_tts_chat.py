"""TTS and chat: text/prompt sets, audio sanity, grades, answer checks, the suites end to end with
fakes, and the real packaged models (piper, espeak-ng, SmolLM2, MiniLM) on a few items."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pytest_speechlab import Audio, Response
from pytest_speechlab.tasks.chat import Prompt, answer_check, judge_messages, load_prompts, parse_verdict, runaway, score_chat
from pytest_speechlab.grading import Grade, GradePolicy
from pytest_speechlab.metrics.normalize import get_normalizer
from pytest_speechlab._types import Invocation
from pytest_speechlab.grading import cap_grade
from pytest_speechlab.tasks.tts import TTSEval, audio_problems, load_texts

from helpers import FAKE_MODEL_CONFTEST, write_manifest

RATE = 16000


def speechlike(seconds: float, lead: float = 0.1, trail: float = 0.1, level: float = 0.3) -> Audio:
    t = np.arange(int(seconds * RATE)) / RATE
    voice = (level * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    pad = lambda s: np.zeros(int(s * RATE), dtype=np.float32)  # noqa: E731
    return Audio(np.concatenate([pad(lead), voice, pad(trail)]), RATE)


TEXT = "the quick brown fox jumps over the lazy dog"  # 9 words


def test_sane_speech_has_no_problems():
    assert audio_problems(speechlike(3.0), TEXT) == []


@pytest.mark.parametrize("audio, expected", [
    (Audio(np.zeros(0, dtype=np.float32), RATE), "empty audio"),
    (Audio(np.where(np.arange(48000) % 100 == 0, np.nan, 0.2).astype(np.float32), RATE), "NaN/inf samples"),
    (Audio(np.clip(speechlike(3.0, level=3.0).samples, -1, 1), RATE), "clipping"),
    (speechlike(3.0, lead=2.5), "leading silence 2.5"),
    (speechlike(3.0, trail=4.0), "trailing silence 4.0"),
    (speechlike(0.5), "implausible duration: 9 words in 0.70 s"),
    (speechlike(20.0), "implausible duration"),
    (Audio(np.zeros(RATE * 3, dtype=np.float32), RATE), "silent"),
])
def test_audio_problems_fire_with_their_numbers(audio, expected):
    found = audio_problems(audio, TEXT)
    assert any(expected in p for p in found), found


def test_text_set_reports_bad_lines_and_keeps_the_good(tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_bytes(b'{"id": "a", "text": "Hello there."}\n{"id": "b", "text": ""}\nnot json\n'
                     b'{"id": "a", "text": "again"}\n{"id": "c", "text": "caf\xe9"}\n{"text": "No id here."}\n')
    texts = load_texts(path, name="t")
    assert [i.id for i in texts.items] == ["a", "line6"]
    messages = [str(e) for e in texts.errors]
    assert any("line 2: missing or empty text" in m for m in messages)
    assert any("line 3: not valid JSON" in m for m in messages)
    assert any("line 4: duplicate id 'a'" in m for m in messages)
    assert any("line 5: not valid UTF-8" in m for m in messages)


def test_tts_grade_is_capped_by_audio_problems_and_broken_determinism():
    good = Grade("tts", "A", "WER 0.06 > 0.05 needed for A+", True)
    clean = TTSEval(SimpleNamespace(model="tts", dataset="t"), "judge", True)
    assert cap_grade(good, [clean], GradePolicy()) is good
    noisy = TTSEval(SimpleNamespace(model="tts", dataset="t"), "judge", True,
                    problems={"t1": ["clipping: 2.00% of samples at full scale"]}, nondeterministic=["t2"])
    capped = cap_grade(good, [noisy], GradePolicy())
    assert capped.grade == "C" and not capped.production_ready
    assert "audio problems on 1 item(s): t1: clipping" in capped.reason
    assert "claims determinism but 1 item(s) differed" in capped.reason and "alone: A" in capped.reason


def test_prompt_set_and_answer_checks(tmp_path):
    path = write_manifest(tmp_path / "p.jsonl", [
        {"id": "q", "prompt": "What is 2+2?", "expect": ["4", "four"], "spoken": True},
        {"id": "m", "messages": [{"role": "system", "content": "Brief."}, {"role": "user", "content": "Hi?"}],
         "expect_all": ["hello", "there"]},
        '{"id": "bad"', {"id": "none"}, {"id": "roles", "messages": [{"content": "x"}]},
    ])
    prompts = load_prompts(path)
    assert [p.id for p in prompts.prompts] == ["q", "m"] and prompts.prompts[0].spoken
    assert prompts.prompts[1].question == "Hi?"
    assert [str(e).split(": ", 1)[1] for e in prompts.errors] == [
        "not valid JSON (Expecting ',' delimiter at column 13)", 'needs "prompt" or "messages"',
        "messages must be {role, content} objects"]
    norm = get_normalizer()
    q, m = prompts.prompts
    assert answer_check(q, norm("The answer is four."), norm) == (True, "")
    assert answer_check(q, norm("I do not know."), norm) == (False, "'4' or 'four'")
    assert answer_check(m, norm("Hello!"), norm) == (False, "there")
    assert answer_check(Prompt("x", ()), "anything", norm) == (None, "")


def test_runaway_and_empty_responses_are_flagged_and_ordinary_ones_are_not():
    loop = "I am sorry. " * 12
    assert "compression ratio" in runaway(loop, get_normalizer()(loop))
    assert "repeated 3 times" in runaway("we will we will we will go", "we will we will we will go")
    ordinary = "The capital of France is Paris, a city on the Seine known for its museums and cafes."
    assert runaway(ordinary, get_normalizer()(ordinary)) is None
    prompt = Prompt("q", ({"role": "user", "content": "?"},), expect=("paris",))
    empty = score_chat(Invocation(Response("  ")), prompt, get_normalizer())
    assert empty.problems == ["empty response"] and empty.passed is False


FAKES = '''

class FakeTTS:
    """Speaks a known sentence as a tone of the length the fake ASR judge maps back to it."""
    deterministic = True

    def __init__(self, params):
        self.seconds = {text: float(key) for key, text in TEXTS.items()}
        self.wrong = params.get("wrong", False)

    def synthesize(self, text):
        import numpy as np
        from pytest_speechlab import Audio
        key = text.lower().rstrip(".!?")
        seconds = 2.5 if self.wrong else self.seconds.get(key, 2.5)
        t = np.arange(int(seconds * 16000)) / 16000
        hiss = np.random.default_rng(len(text)).normal(0, 0.002 * len(text), len(t))  # each text its own quality
        return Audio((0.3 * np.sin(2 * np.pi * 220 * t) + hiss).astype(np.float32), 16000)


class FakeChat:
    def stream(self, messages):
        question = messages[-1]["content"]
        answer = {"the cat sat on the mat": "A cat on a mat.", "hello world": "Hello to you too.",
                  "hostile": '<script>alert(1)</script> "><img src=x onerror=alert(2)> | pipe'}.get(
            question.lower().rstrip("?.!"), "I do not know.")
        for word in answer.split(" "):
            yield word + " "


class FakeJudge:
    """Says YES when the answer it grades mentions a cat."""
    def respond(self, messages):
        answer = messages[-1]["content"].split("Answer to grade:", 1)[1]
        return "YES, it is right." if "cat" in answer.lower() else "No."


@hookimpl(specname="speechlab_register_models")
def register_tts_and_chat(register):
    register("fake/judge", task="chat", load=lambda p: FakeJudge(), backend="fake-chat")
    register("fake/tts", task="tts", load=FakeTTS, backend="fake-tts")
    register("fake/tts-wrong", task="tts", load=FakeTTS, backend="fake-tts", params={"wrong": True})
    register("fake/chat", task="chat", load=lambda p: FakeChat(), backend="fake-chat")
'''


@pytest.fixture
def tts_chat_project(speechlab_project):
    speechlab_project.makeconftest(FAKE_MODEL_CONFTEST + FAKES)
    write_manifest(speechlab_project.path / "texts.jsonl", [
        {"id": "cat", "text": "The cat sat on the mat."}, {"id": "hello", "text": "Hello world!"}])
    write_manifest(speechlab_project.path / "prompts.jsonl", [
        {"id": "cat", "prompt": "The cat sat on the mat?", "expect": ["cat"], "spoken": True},
        {"id": "hello", "prompt": "Hello world?", "expect": ["hello"], "spoken": True}])
    with open(speechlab_project.path / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.speechlab.tts]\njudge = "fake/perfect"\ntexts = ["texts.jsonl"]\nquality = false\n'
                 '[tool.speechlab.chat]\nprompts = ["prompts.jsonl"]\ntts = "fake/tts"\n'
                 'relevance_judge = "none"\n')
    return speechlab_project


def test_tts_suite_round_trips_through_the_judge(tts_chat_project):
    result = tts_chat_project.runpytest("suites/test_tts.py", "--speechlab-no-db", "-rfs",
                                        "--speechlab-model", "fake/tts", "--speechlab-model", "fake/tts-wrong")
    out = result.stdout.str()
    # fake/tts: all pass (readiness skips); fake/tts-wrong: the judge hears nothing -> WER 1.0
    result.assert_outcomes(passed=9, failed=1, skipped=4)  # human_mos: no ratings without a database
    assert "FAILED suites/test_tts.py::test_tts_intelligibility[fake/tts-wrong-texts.jsonl]" in out
    assert "corpus WER 1.0000 > threshold 0.1000 for fake/tts-wrong" in out
    assert "intelligibility judged by fake/perfect" in out
    row = next(line for line in out.splitlines() if line.startswith("fake/tts ") and "texts.jsonl" in line)
    assert " 0.000 " in row  # WER of the good fake


def test_chat_suite_and_spoken_pipeline_with_fakes(tts_chat_project):
    result = tts_chat_project.runpytest("suites/test_chat.py", "--speechlab-no-db", "-rs",
                                        "--speechlab-model", "fake/chat")
    out = result.stdout.str()
    result.assert_outcomes(passed=4, skipped=1)  # relevance skips: no judge named "none"
    assert "spoken questions: fake/tts -> fake/perfect -> fake/chat: 2 prompts; ok 2" in out
    assert "cat: heard 'the cat sat on the mat' (question WER 0.00); typed pass, spoken pass; ok" in out


def test_chat_results_reach_every_report_and_stay_text(tts_chat_project):
    write_manifest(tts_chat_project.path / "prompts.jsonl", [
        {"id": "cat", "prompt": "The cat sat on the mat?", "expect": ["cat"], "spoken": True},
        {"id": "evil", "prompt": "hostile", "expect": ["nothing"]}])
    result = tts_chat_project.runpytest("suites/test_chat.py", "--speechlab-no-db", "--speechlab-model", "fake/chat",
                                        "--speechlab-json", "run.json", "--speechlab-markdown", "card.md",
                                        "--html", "report.html", "--self-contained-html")
    result.assert_outcomes(passed=3, failed=1, skipped=1)  # pass rate 0.5 < 0.7
    run = json.loads((tts_chat_project.path / "run.json").read_text())
    assert run["format"] == "pytest-speechlab-results/2"
    (chat,) = run["chat"]
    assert chat["summary"]["model"] == "fake/chat" and chat["summary"]["pass_rate"] == 0.5
    evil = next(a for a in chat["items"] if a["id"] == "evil")
    assert evil["passed"] is False and evil["answer"].startswith("<script>")  # data, kept as it was
    assert run["spoken"][0]["items"][0]["heard"] == "the cat sat on the mat"
    card = (tts_chat_project.path / "card.md").read_text()
    html_report = (tts_chat_project.path / "report.html").read_text()
    for text in (card, html_report):
        assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_report and 'id="speechlab-chat"' in html_report
    assert "| fake/chat | prompts.jsonl | 2/2 | 0.50 [0.09-0.91] |" in card  # with its Wilson interval


def test_a_judge_model_grades_the_answers_and_its_verdicts_are_cached(tts_chat_project):
    (tts_chat_project.path / "pyproject.toml").write_text(
        (tts_chat_project.path / "pyproject.toml").read_text().replace('tts = "fake/tts"', 'tts = "fake/tts"\njudge = "fake/judge"'))
    args = ("suites/test_chat.py", "--speechlab-db", str(tts_chat_project.path / "r.db"), "--speechlab-model", "fake/chat",
            "--speechlab-json", "run.json", "-k", "not spoken")
    first = tts_chat_project.runpytest(*args).stdout.str()
    # the answers: "A cat on a mat." (key passes, judge YES), "Hello to you too." (key passes, judge NO)
    assert ("[fake/chat] judged by fake/judge: pass 0.50 [0.09-0.91] (1/2); agrees with the answer key on 0.50; "
            "no verdict in 0 repl(ies); 0 verdict(s) from the cache") in first
    run = json.loads((tts_chat_project.path / "run.json").read_text())
    items = {i["id"]: i for i in run["chat"][0]["items"]}
    assert items["cat"]["judged"] is True and items["hello"]["judge_reply"] == "No."
    assert run["chat"][0]["summary"]["judge"] == "fake/judge"
    again = tts_chat_project.runpytest(*args).stdout.str()
    assert "2 verdict(s) from the cache" in again
    (tts_chat_project.path / "pyproject.toml").write_text(
        (tts_chat_project.path / "pyproject.toml").read_text().replace('judge = "fake/judge"', 'judge = "fake/perfect"'))
    wrong = tts_chat_project.runpytest(*args)
    assert "chat: [tool.speechlab.chat] judge 'fake/perfect' is a asr model, not a chat model" in wrong.stdout.str()
    assert "Traceback" not in wrong.stdout.str()


def test_verdicts_are_read_from_the_first_yes_or_no_word():
    assert parse_verdict("Yes. The answer is correct.") is True
    assert parse_verdict("**NO** - it names the wrong planet") is False
    assert parse_verdict("The answer is incorrect.") is False
    assert parse_verdict("I cannot tell.") is None
    assert parse_verdict("The answer is not correct. The correct answer is: Paris.") is False  # smollm2's words
    assert parse_verdict("That isn't right.") is False
    messages = judge_messages(Prompt("q", ({"role": "user", "content": "Where do we live?"},), expect=("Earth",),
                                     forbid=("Kepler-41B",)), "On Kepler-41B.")
    assert "A correct answer says: Earth" in messages[-1]["content"]
    assert "It must not state: Kepler-41B" in messages[-1]["content"]


def test_asr_suites_are_deselected_when_only_tts_is_selected(tts_chat_project):
    result = tts_chat_project.runpytest("suites", "--speechlab-no-db", "--speechlab-model", "fake/tts")
    result.assert_outcomes(passed=5, skipped=2)  # the TTS suite alone; readiness and human_mos skip
    assert "deselected" in result.stdout.str()


@pytest.mark.parametrize("name", ["piper/en_US-joe-medium", "espeak-ng/en-us"])
def test_real_tts_models_are_intelligible_to_the_real_judge(name, pytester):
    pytest.importorskip("piper", reason="speechlab-piper is not installed (README: TTS and chat)")
    pytest.importorskip("espeakng_loader", reason="speechlab-espeak is not installed")
    write_manifest(pytester.path / "texts.jsonl", [
        {"id": "t1", "text": "The garden gate was left open all afternoon."},
        {"id": "t2", "text": "Have you seen my keys anywhere in the kitchen?"}])
    pytester.makefile(".toml", pyproject='[tool.speechlab.tts]\ntexts = ["texts.jsonl"]\n')
    suites = pytester.mkdir("suites")
    from helpers import REPO

    (suites / "test_tts.py").write_text((REPO / "suites" / "test_tts.py").read_text())
    result = pytester.runpytest_subprocess("suites", "--speechlab-no-db", "--speechlab-model", name,
                                           "-p", "no:cacheprovider")
    out = result.stdout.str()
    row = next(line for line in out.splitlines() if line.startswith(name))
    wer = float(row.split()[4])
    assert wer <= 0.25, out  # measured 0.0 for both on these sentences
    assert f"tts: {name} on texts.jsonl: intelligibility judged by faster-whisper/tiny.en" in out
    assert "audio problems on 0 item(s)" in out
    quality = next(line for line in out.splitlines() if line.startswith("  perceptual quality over 2 clips"))
    ovrl = float(quality.split("DNSMOS OVRL ")[1].split()[0])
    assert ovrl > (3.0 if name.startswith("piper") else 2.0), quality  # measured 3.3 and 2.7 on the TTS set


def test_real_chat_model_answers_and_streams():
    pytest.importorskip("speechlab_transformers_chat", reason="speechlab-transformers-chat is not installed")
    from pytest_speechlab import ModelPool, Runner, build_registry, make_plugin_manager

    registry = build_registry(make_plugin_manager())
    pool = ModelPool()
    loaded = pool.get(registry.model("transformers/smollm2-135m-instruct"))
    (call,) = Runner().run_unit(loaded, [Prompt("q", ({"role": "user", "content": "What is the capital of France?"},))])
    out = call.invocation
    assert "paris" in out.value.text.lower(), out.value.text
    assert out.first_token_seconds is not None and 0 < out.first_token_seconds < out.seconds
    assert out.value.tokens and out.value.tokens > 3
    assert loaded.info["source_weights_sha256"].startswith("sha256:")
    judge = pool.get(registry.model("sentence-transformers/all-MiniLM-L6-v2")).instance
    q, on, off = judge.embed(["What is the capital of France?", out.value.text, "Mix flour with water."])
    cos = lambda a, b: float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))  # noqa: E731
    assert cos(q, on) > cos(q, off) + 0.2


def test_tts_ids_never_become_paths_outside_the_audio_folder(tts_chat_project, tmp_path):
    """'../x', an absolute path, 'x' and 'sub/../x' as ids: four different files, all inside the
    folder the summary names; nothing written anywhere else."""
    outside = tmp_path / "outside-target"
    ids = ["../escaped", str(outside), "x", "sub/../x"]
    write_manifest(tts_chat_project.path / "texts.jsonl", [{"id": i, "text": "Hello world!"} for i in ids])
    result = tts_chat_project.runpytest("suites/test_tts.py", "--speechlab-no-db", "--speechlab-model", "fake/tts")
    out = result.stdout.str()
    folder = Path(re.search(r"synthesized audio in (\S+);", out).group(1))
    files = sorted(folder.iterdir())
    assert len(files) == 4 and all(f.parent == folder and f.suffix == ".wav" for f in files)
    assert not outside.exists() and not outside.with_suffix(".wav").exists()
    assert not (folder.parent / "escaped.wav").exists()


def test_chat_and_spoken_results_reach_the_database_show_and_the_benchmark_json(tts_chat_project, monkeypatch):
    from click.testing import CliRunner

    from pytest_speechlab.cli import main as speechlab
    from pytest_speechlab.sinks.store import Store

    db = tts_chat_project.path / "results.db"
    result = tts_chat_project.runpytest("suites/test_chat.py", "--speechlab-db", str(db), "--speechlab-model",
                                        "fake/chat", "--speechlab-benchmark-json", "bench.json")
    result.assert_outcomes(passed=4, skipped=1)
    store = Store(f"sqlite:///{db}", read_only=True)
    run_id = store.resolve("latest")
    rows = {(r["dataset"], r["utterance_id"]): r for r in store.utterances(run_id, "fake/chat")}
    assert rows[("prompts.jsonl", "cat")]["hypothesis"].strip() == "A cat on a mat."
    assert rows[("prompts.jsonl", "cat")]["note"].startswith("passed")
    spoken = [k for k in rows if k[0].startswith("prompts.jsonl (spoken: fake/tts -> fake/perfect)")]
    assert len(spoken) == 2
    metrics = {a["dataset"]: a["metrics"] for a in store.run(run_id)["aggregates"]}
    assert metrics["prompts.jsonl"]["pass_rate"] == 1.0 and metrics["prompts.jsonl"]["task"] == "chat"
    shown = CliRunner().invoke(speechlab, ["--db", str(db), "show", "latest"]).output
    assert "chat fake/chat on prompts.jsonl: answered 2/2, pass 2/2 [0.34-1.00]" in shown
    assert "spoken fake/chat on prompts.jsonl (spoken: fake/tts -> fake/perfect): 2 prompts; ok 2" in shown
    bench = json.loads((tts_chat_project.path / "bench.json").read_text())["benchmarks"]
    chat = next(b for b in bench if b["name"] == "speechlab-chat[fake/chat-prompts.jsonl]")
    assert chat["extra_info"]["pass_rate"] == 1.0 and chat["stats"]["rounds"] == 2


def test_a_tts_rerun_takes_its_synthesis_from_the_cache_and_times_a_sample_again(tts_chat_project):
    args = ("suites/test_tts.py", "--speechlab-db", str(tts_chat_project.path / "r.db"), "--speechlab-model", "fake/tts")
    first = tts_chat_project.runpytest(*args, "--speechlab-json", "first.json")
    first.assert_outcomes(passed=5, skipped=2)
    again = tts_chat_project.runpytest(*args, "--speechlab-json", "again.json")
    again.assert_outcomes(passed=5, skipped=2)  # the RTF test judges the sample synthesized again here
    again.stdout.fnmatch_lines(["inference cache: 2 outputs from the cache, 0 computed*"])
    runs = [json.loads((tts_chat_project.path / name).read_text())["evaluations"][0]["summary"]
            for name in ("first.json", "again.json")]
    assert runs[0]["cached"] == 0 and runs[1]["cached"] == 2
    assert runs[1]["retimed"]["utterances"] == 2 and runs[1]["wer"] == runs[0]["wer"]
    from pytest_speechlab.sinks.store import Store

    store = Store(f"sqlite:///{tts_chat_project.path / 'r.db'}", read_only=True)
    notes = [r["note"] or "" for r in store.utterances(store.resolve("latest"))]
    assert notes and all("judge transcript from the inference cache" in n for n in notes)


def test_answer_keys_check_whole_words_aliases_and_forbidden_facts(tmp_path):
    """The Kepler-41B answer mentions Earth and passed the old substring check; the built-in key of
    that question forbids the distractor, and the words are matched whole."""
    from pytest_speechlab._builtin import fixtures_dir
    from pytest_speechlab.tasks.chat import KEY_NORMALIZER

    norm = get_normalizer(KEY_NORMALIZER)
    builtin = load_prompts(fixtures_dir() / "chat" / "prompts.jsonl")
    assert not builtin.errors
    planet = next(p for p in builtin.prompts if p.id == "c07_planet")
    kepler = "We live on Kepler-41B, a planet much like Earth."
    assert answer_check(planet, norm(kepler), norm) == (False, "forbidden 'Kepler'")
    assert answer_check(planet, norm("We live on planet Earth."), norm) == (True, "")
    math = next(p for p in builtin.prompts if p.id == "c02_math")
    assert answer_check(math, norm("2 + 2 = 4"), norm) == (True, "")
    assert answer_check(math, norm("The answer is 40."), norm)[0] is False  # "4" is not a substring of "40"
    assert answer_check(math, norm("It is five."), norm) == (False, "'4' or 'four'; forbidden 'five'")
    water = next(p for p in builtin.prompts if p.id == "c06_water")
    assert answer_check(water, norm("Two hydrogen atoms and one oxygen atom."), norm) == (True, "")
    assert answer_check(water, norm("It is H2O."), norm) == (True, "")
    assert answer_check(water, norm("Mostly hydrogen."), norm) == (False, "'oxygen' or 'H2O'")
    earthquake = Prompt("e", (), expect=("earth",))
    assert answer_check(earthquake, norm("An earthquake."), norm)[0] is False


def test_answer_key_fields_of_the_wrong_type_are_that_line_s_error(tmp_path):
    path = write_manifest(tmp_path / "p.jsonl", [
        {"id": "a", "prompt": "?", "expect": "Paris"}, {"id": "b", "prompt": "?", "forbid": [3]},
        {"id": "c", "prompt": "?", "expect_all": [["x", ""]]}, {"id": "ok", "prompt": "?", "forbid": ["x"]}])
    prompts = load_prompts(path)
    assert [p.id for p in prompts.prompts] == ["ok"]
    assert [str(e).split(": ", 1)[1] for e in prompts.errors] == [
        '"expect" must be a list, got str', '"forbid" must hold non-empty strings', '"expect_all" must hold non-empty strings']


def test_tts_and_chat_results_show_in_the_viewer(tts_chat_project):
    from pytest_speechlab.sinks.store import Store
    from pytest_speechlab.view.app import create_app

    db = tts_chat_project.path / "results.db"
    tts_chat_project.runpytest("suites/test_tts.py", "suites/test_chat.py", "--speechlab-db", str(db),
                               "--speechlab-model", "fake/tts", "--speechlab-model", "fake/chat")
    stored = Store(f"sqlite:///{db}", read_only=True)
    tts = next(a["metrics"]["tts"] for a in stored.run(stored.resolve("latest"))["aggregates"] if a["model"] == "fake/tts")
    assert tts["judge"] == "fake/perfect" and tts["texts"] == "texts.jsonl"  # the TTS part reached the database
    client = create_app(lambda: Store(f"sqlite:///{db}", read_only=True), "t").test_client()
    page = client.get("/runs/latest", headers={"Authorization": "Bearer t"}).text
    tts_table = page.split("<h2>TTS results</h2>")[1].split("</table>")[0]
    assert "fake/tts" in tts_table and "fake/perfect" in tts_table and "Synthesized audio" in tts_table
    chat_table = page.split("<h2>Chat and spoken-question results</h2>")[1].split("</table>")[0]
    assert "fake/chat" in chat_table and "2/2" in chat_table


PICKLABLE = '''

def load_chat(params):
    return FakeChat()


def load_judge(params):
    return FakeJudge()


@hookimpl(specname="speechlab_register_models")
def register_picklable(register):  # loaders worker processes and Ray actors can import
    register("fake/chat-p", task="chat", load=load_chat, backend="fake-chat")
    register("fake/judge-p", task="chat", load=load_judge, backend="fake-chat")
'''


@pytest.mark.parametrize("executor", [("--speechlab-workers", "2"),
                                      ("--speechlab-executor", "ray", "--speechlab-workers", "2")], ids=["workers", "ray"])
def test_tts_and_chat_run_in_workers_and_on_ray_cached_with_the_serial_figures(tts_chat_project, executor):
    """TTS synthesis, chat answers, the chat judge's verdicts and the spoken pipeline go through the
    runner's one loop: on worker processes or Ray actors, into the inference cache, with the figures
    of a serial run; a second session takes them from the cache."""
    project = tts_chat_project
    project.makeconftest((project.path / "conftest.py").read_text() + PICKLABLE)
    with open(project.path / "pyproject.toml", "a") as fh:
        fh.write('judge = "fake/judge-p"\n')  # [tool.speechlab.chat] is the last table
    common = ("suites/test_tts.py", "suites/test_chat.py", "-p", "no:randomly", "--speechlab-model", "fake/tts",
              "--speechlab-model", "fake/chat-p")

    def run(name: str, *extra: str) -> dict:
        result = project.runpytest_subprocess(*common, "--speechlab-db", f"{name}.db", "--speechlab-json",
                                              f"{name}.json", *extra)
        outcomes = result.parseoutcomes()  # the speed test may skip on a busy machine ("not judged")
        assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 12 and outcomes.get("passed", 0) >= 8, outcomes
        return json.loads((project.path / f"{name}.json").read_text())

    def figures(record: dict) -> dict:
        tts = record["evaluations"][0]["summary"]
        chat, spoken = record["chat"][0], record["spoken"][0]
        return {"wer": tts["wer"], "cer": tts["cer"], "utterances": tts["utterances"],
                "answers": [(i["id"], i["answer"], i["passed"], i["judged"]) for i in chat["items"]],
                "spoken": spoken["summary"] if "summary" in spoken else spoken}

    serial = run("serial")
    parallel = run("parallel", *executor)
    again = run("parallel", *executor)
    assert figures(parallel) == figures(serial) == figures(again)
    workers = {i["worker"] for i in parallel["chat"][0]["items"]}
    assert workers and "" not in workers  # answered in the workers, not in the session's process
    assert {i["worker"] for i in serial["chat"][0]["items"]} == {""}
    assert all(i["cached"] for i in again["chat"][0]["items"])
    assert not any(i["cached"] for i in parallel["chat"][0]["items"])
    assert again["evaluations"][0]["summary"]["cached"] == 2 and parallel["evaluations"][0]["summary"]["cached"] == 0
    assert again["chat"][0]["summary"]["judge_cached"] == again["chat"][0]["summary"]["judge_checked"] > 0
