"""Error rates by slice: fields read from every manifest format, per-slice figures, the largest gap
with its interval, the heterogeneity test (a slice worse by a set margin is found; with no slice
differing, false alarms stay within alpha over a simulation) and small slices listed, not ranked."""
from __future__ import annotations

import json
import random

from helpers import REPO, write_audio

from pytest_speechlab import Output, Transcript, Utterance, get_normalizer
from pytest_speechlab._dataset import load_dataset
from pytest_speechlab.metrics.results import EditCounts, UtteranceResult
from pytest_speechlab.metrics.slices import field_slices, slice_report, value_of
from pytest_speechlab.metrics.wer import score_output

NORMALIZER = get_normalizer()
WORDS = "amber birch cedar delta ember fjord grove harbor island juniper".split()


def test_slice_fields_come_from_jsonl_and_common_voice_tsv(tmp_path):
    write_audio(tmp_path / "a.wav", 1.0)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "x", "audio": "a.wav", "text": "hi", "gender": "female",
                                                  "age": 30, "tags": ["not", "a", "slice"]}) + "\n")
    (utt,) = load_dataset(tmp_path / "m.jsonl").utterances
    assert utt.fields == (("age", "30"), ("gender", "female"))  # a list is no slice
    (tmp_path / "cv.tsv").write_text("client_id\tpath\tsentence\tage\tgender\taccents\tlocale\n"
                                     "abc\ta.wav\thello there\ttwenties\tmale\tScottish English\ten\n")
    (utt,) = load_dataset(tmp_path / "cv.tsv").utterances
    assert dict(utt.fields) == {"accents": "Scottish English", "age": "twenties", "client_id": "abc", "gender": "male"}
    assert utt.language == "en"  # Common Voice's locale is the language, not a field


def scored(uid: str, errors: int, words: int = 10, **fields) -> UtteranceResult:
    """An utterance of ``words`` reference words with ``errors`` substitutions."""
    ref = [WORDS[i % len(WORDS)] for i in range(words)]
    hyp = ["xyz" if i < errors else w for i, w in enumerate(ref)]
    utt = Utterance(uid, f"{uid}.wav", " ".join(ref), fields=tuple(sorted(fields.items())))
    return score_output(Output(utt, Transcript(" ".join(hyp)), 0.1, words / 2.5), NORMALIZER)


def dataset(rng: random.Random, n: int = 90, worse: float = 0.0) -> list[UtteranceResult]:
    """Utterances with an error rate near 10%; accent 'b' ``worse`` higher; gender and speaker random."""
    out = []
    for i in range(n):
        accent = "abc"[i % 3]
        p = 0.10 + (worse if accent == "b" else 0.0)
        errors = sum(rng.random() < p for _ in range(10))
        out.append(scored(f"u{i}", errors, accent=accent, gender=rng.choice("fm"), speaker=f"s{i % 30}",
                          region=f"r{rng.randrange(6)}"))
    return out


def test_a_slice_worse_by_a_margin_is_found_with_its_gap():
    found = field_slices(dataset(random.Random(1), worse=0.15), "accent")
    assert [s.value for s in found.slices] == ["a", "b", "c"] and found.worst.value == "b"
    assert found.p_value < 0.01 and 0.08 < found.gap < 0.30
    assert found.gap_ci[0] < found.gap < found.gap_ci[1] and found.gap_ci[0] > 0
    summary = found.summary()
    assert summary["worst"] == "b" and len(summary["slices"][1]["ids"]) == 30
    assert summary["slices"][1]["ci"][0] < summary["slices"][1]["error_rate"] < summary["slices"][1]["ci"][1]


def test_slices_too_small_are_listed_not_ranked():
    found = field_slices(dataset(random.Random(2)), "speaker")  # 30 speakers of 3 utterances each
    assert len(found.slices) == 30 and found.judged == [] and found.p_value is None and found.gap is None
    assert found.summary()["too_few"][0] == "s0" and "too few to judge (n = 3 < 10)" == found.slices[0].too_few
    assert field_slices(dataset(random.Random(2)), "nothing").missing == 90  # no such field: all missing


def test_derived_bands():
    short, long = scored("s", 0, words=4), scored("l", 0, words=40)
    assert value_of(short, "duration") == "< 2 s" and value_of(long, "duration") == "10-30 s"
    assert value_of(short, "speaking_rate") == "2-3 words/s"
    assert value_of(short, "snr") is None


def test_false_alarms_stay_within_alpha_when_no_slice_differs():
    """200 datasets where no slice differs, three fields each, Holm over the fields: the share with
    any field flagged at alpha 0.05 stays within alpha (its binomial 99.9% bound over 200: 0.10)."""
    rng = random.Random(20261207)
    alarms = 0
    for _ in range(200):
        utterances = dataset(rng, n=60)
        report = slice_report(utterances, ["accent", "gender", "speaker"], minimum=10)
        alarms += any(f.differs(0.05) for f in report)
    assert alarms / 200 <= 0.10, alarms


def test_counts_add_up():
    found = field_slices(dataset(random.Random(3)), "gender")
    assert sum(len(s.utterances) for s in found.slices) == 90
    assert sum((s.counts for s in found.slices), EditCounts()).reference_length == 900


SLICE_CONFTEST = '''
import json, os
from pytest_speechlab import hookimpl, Transcript

class Lookup:
    """Knows each clip by its length; SLICE_WORSE=K drops the last K words of the clips of accent
    SLICE_WORSE_ON (b by default)."""
    sample_rate = 16000

    def __init__(self, params):
        self.texts = json.load(open(os.environ["TEXTS_JSON"]))
        self.worse = int(os.environ.get("SLICE_WORSE", "0"))
        self.worse_on = os.environ.get("SLICE_WORSE_ON", "b")

    def transcribe(self, audio):
        index, accent, text = self.texts[f"{len(audio) / self.sample_rate:.2f}"]
        if accent == self.worse_on and self.worse:
            text = " ".join(text.split()[:-self.worse])
        return Transcript(text)

    def info(self):
        return {"threads": 1, "device": "cpu", "decode": {"worse": self.worse, "on": self.worse_on}}

@hookimpl
def speechlab_register_models(register):
    register("fake/lookup", task="asr", load=Lookup, backend="fake")
'''


def slice_project(pytester, monkeypatch, n: int = 60):
    texts, lines = {}, []
    for i in range(n):
        seconds, accent = 3.0 + 0.05 * i, "abc"[i % 3]  # 8 words in 3 s or more: a plausible rate
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8))
        write_audio(pytester.path / "data" / f"{i}.wav", seconds)
        texts[f"{seconds:.2f}"] = (i, accent, text)
        lines.append({"id": f"u{i:02d}", "audio": f"{i}.wav", "text": text, "accent": accent,
                      "gender": "fm"[i % 2]})
    (pytester.path / "data" / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (pytester.path / "texts.json").write_text(json.dumps(texts))
    monkeypatch.setenv("TEXTS_JSON", str(pytester.path / "texts.json"))
    monkeypatch.chdir(pytester.path)
    pytester.makeconftest(SLICE_CONFTEST)
    (pytester.path / "suites").mkdir()
    for suite in ("test_slices.py", "test_asr_accuracy.py", "test_regression.py"):
        (pytester.path / "suites" / suite).write_text((REPO / "suites" / suite).read_text())
    pytester.makefile(".toml", pyproject="""
[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
speechlab_models = ["fake/lookup"]
speechlab_datasets = ["data/manifest.jsonl"]

[tool.speechlab]
db = "results.db"

[tool.speechlab.thresholds]
wer = 0.2
rtf = 1000.0
slice_gap = 0.05

[tool.speechlab.slices]
fields = ["accent"]
""")
    return pytester


def test_the_slice_suite_fails_a_model_worse_for_one_accent(pytester, monkeypatch):
    project = slice_project(pytester, monkeypatch)
    fair = project.runpytest("suites/test_slices.py", "--speechlab-slice", "gender")
    assert fair.ret == 0, fair.stdout.str()[-3000:]
    assert fair.parseoutcomes()["passed"] == 2
    text = fair.stdout.str()
    assert "slices of fake/lookup on data/manifest.jsonl by accent: a 0.000" in text
    assert "slices of fake/lookup on data/manifest.jsonl by gender:" in text  # the option adds to the configuration
    monkeypatch.setenv("SLICE_WORSE", "2")  # accent b loses 2 of 8 words: 0.25 there, 0.083 overall
    unfair = project.runpytest("suites/test_slices.py", "suites/test_asr_accuracy.py", "--speechlab-json", "run.json",
                               "--speechlab-markdown", "score.md", "--html", "report.html")
    outcomes = unfair.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] >= 2  # the gap fails; the whole set's WER passes
    text = unfair.stdout.str()
    assert "largest gap between slices above threshold 0.0500" in text and "accent: b 0.2500 - a 0.0000 = +0.2500" in text
    scorecard = (project.path / "score.md").read_text()
    assert "## Error rates by slice" in scorecard and "| b | 20 | 0.250 \\[" in scorecard
    page = (project.path / "report.html").read_text()
    assert "error rate by accent" in page and "<svg" in page and "heterogeneity p = " in page
    run = json.loads((project.path / "run.json").read_text())
    (section,) = run["slices"]
    (accent,) = section["fields"]
    assert accent["worst"] == "b" and accent["p_value"] < 0.01 and len(accent["slices"][1]["ids"]) == 20
    from pytest_speechlab.sinks.store import Store

    store = Store(f"sqlite:///{project.path / 'results.db'}", read_only=True)
    (aggregate,) = store.run(store.resolve("latest"))["aggregates"]
    assert aggregate["metrics"]["slices"][0]["worst"] == "b"  # recorded with the evaluation


def test_the_gate_catches_a_regression_in_one_slice_while_the_whole_set_is_flat(pytester, monkeypatch):
    """The baseline drops a word on each of accent a's utterances, the candidate on each of accent
    b's instead: the whole set's WER is the same (within noise), accent b's is worse, and the gate
    (Holm over every figure and slice) names that slice."""
    project = slice_project(pytester, monkeypatch, n=90)
    monkeypatch.setenv("SLICE_WORSE", "1")
    monkeypatch.setenv("SLICE_WORSE_ON", "a")
    assert project.runpytest("suites/test_asr_accuracy.py").ret == 0
    from click.testing import CliRunner

    from pytest_speechlab.cli import main as speechlab

    assert CliRunner().invoke(speechlab, ["baseline", "set", "main", "latest"]).exit_code == 0
    monkeypatch.setenv("SLICE_WORSE_ON", "b")
    gated = project.runpytest("suites/test_regression.py", "--speechlab-baseline", "main",
                              "--speechlab-fail-on-regression", "--speechlab-json", "run.json")
    text = gated.stdout.str()
    assert gated.ret == 1, text[-3000:]
    (analysis,) = json.loads((project.path / "run.json").read_text())["gate"]["comparisons"]
    verdicts = {f["name"]: f["verdict"] for f in analysis["figures"]}
    assert verdicts["WER accent=b"] == "REGRESSION" and verdicts["WER accent=a"] == "better"
    assert verdicts["WER"] == "within noise"  # the whole set is flat
    assert "REGRESSION: WER accent=b 0.0000 -> 0.1250" in text
    compare = CliRunner().invoke(speechlab, ["compare", "main", "latest"])  # the recorded run's slices
    assert compare.exit_code == 1 and "WER accent=b" in compare.output


def test_the_viewer_shows_the_slices_and_the_utterances_behind_each(pytester, monkeypatch):
    from pytest_speechlab.sinks.store import Store
    from pytest_speechlab.view.app import create_app

    project = slice_project(pytester, monkeypatch)
    monkeypatch.setenv("SLICE_WORSE", "2")
    project.runpytest("suites/test_slices.py")
    db = f"sqlite:///{project.path / 'results.db'}"
    run_id = Store(db, read_only=True).resolve("latest")
    client = create_app(lambda: Store(db, read_only=True), "tok").test_client()
    auth = {"Authorization": "Bearer tok"}
    page = client.get(f"/runs/{run_id}", headers=auth).text
    assert "Error rates by slice" in page and "by accent" in page and "heterogeneity p = " in page
    behind = client.get(f"/runs/{run_id}/evaluation?model=fake%2Flookup&dataset=data%2Fmanifest.jsonl"
                        "&field=accent&value=b", headers=auth)
    assert behind.status_code == 200 and "20 utterances" in behind.text and "Only the slice accent = b" in behind.text
    assert client.get(f"/runs/{run_id}/evaluation?model=fake%2Flookup&dataset=data%2Fmanifest.jsonl"
                      "&field=accent&value=zz", headers=auth).status_code == 404


def test_the_grade_follows_the_worst_slice_where_the_slices_differ(pytester, monkeypatch):
    project = slice_project(pytester, monkeypatch)
    monkeypatch.setenv("SLICE_WORSE", "2")  # accent b at 0.25 (within C), the whole set at 0.083 (A)
    (project.path / "suites" / "test_readiness.py").write_text((REPO / "suites" / "test_readiness.py").read_text())
    result = project.runpytest("suites/test_readiness.py", "suites/test_asr_accuracy.py")
    text = result.stdout.str()
    assert "worst slice accent = b: error rate 0.250" in text and "the whole set alone: A" in text


def test_the_accents_fixture_has_four_slices_of_twelve():
    from pytest_speechlab import build_registry
    from pytest_speechlab._registry import make_plugin_manager

    dataset = load_dataset(build_registry(make_plugin_manager([])).datasets["speechlab/accents"].path)
    accents = [dict(u.fields)["accent"] for u in dataset.utterances]
    assert not dataset.errors and {a: accents.count(a) for a in set(accents)} == {
        "american": 12, "british-rp": 12, "scottish": 12, "caribbean": 12}
    assert all(dict(u.fields)["voice"].startswith("espeak-ng en") for u in dataset.utterances)
    genders = [dict(u.fields)["gender"] for u in dataset.utterances]
    assert genders.count("female") == genders.count("male") == 24
    # the same clips as a Common Voice release lists them: its columns are the slice fields
    cv = load_dataset(build_registry(make_plugin_manager([])).datasets["speechlab/accents-cv"].path)
    assert not cv.errors and [u.audio_path for u in cv.utterances] == [u.audio_path for u in dataset.utterances]
    assert [u.text for u in cv.utterances] == [u.text for u in dataset.utterances]
    fields = [dict(u.fields) for u in cv.utterances]
    assert {f["gender"] for f in fields} == {"male_masculine", "female_feminine"} and len({f["accents"] for f in fields}) == 4
    assert len({f["client_id"] for f in fields}) == 8 and {u.language for u in cv.utterances} == {"en"}
