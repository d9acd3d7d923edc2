"""Grades: WER/RTF levels, the hallucination cap, reasons that name the criterion, --speechlab-min-grade."""
from __future__ import annotations

import pytest

from helpers import write_audio, write_manifest
from pytest_speechlab import GradePolicy, Output, SpeechlabError, Transcript, Utterance, evaluate, get_normalizer, grade_model

NORMALIZER = get_normalizer()


def evaluation(dataset: str, items: list[tuple[str, str, str]], rtf: float = 0.05):
    """items: (kind, reference, hypothesis); every clip 2 s long, processed at ``rtf``."""
    outputs = [
        Output(Utterance(f"u{i}", f"u{i}.wav", ref, kind, source=f"m line {i}"), Transcript(hyp), 2.0 * rtf, 2.0)
        for i, (kind, ref, hyp) in enumerate(items)
    ]
    return evaluate("m", dataset, outputs, NORMALIZER)


SPEECH_OK = [("speech", "turn left at the next corner", "turn left at the next corner")] * 10
SILENCE_OK = [("nonspeech", "", "")] * 10


def test_clean_fast_accurate_model_gets_a_plus():
    grade = grade_model("m", [evaluation("speech", SPEECH_OK), evaluation("noise", SILENCE_OK)])
    assert grade.grade == "A+" and grade.production_ready
    assert grade.datasets == ("speech", "noise") and grade.reason.endswith("[over speech, noise]")


def test_a_grade_from_speech_only_says_non_speech_was_not_measured():
    grade = grade_model("m", [evaluation("speech", SPEECH_OK)])
    assert grade.grade == "A"
    assert "hallucination on non-speech was not measured" in grade.reason and "[over speech]" in grade.reason


@pytest.mark.parametrize("wrong_words, rtf, expected, criterion", [
    (4, 0.05, "A", "WER 0.067 on speech > 0.05 needed for A+"),     # 4/60 words wrong
    (0, 0.4, "A", "RTF 0.400 on speech > 0.2 needed for A+"),
    (8, 0.05, "B", "WER 0.133 on speech > 0.1 needed for A"),
    (30, 0.05, "F", "WER 0.500 on speech > 0.4 needed for D"),
])
def test_wer_and_rtf_set_the_grade_and_the_reason_names_them(wrong_words, rtf, expected, criterion):
    items = list(SPEECH_OK)
    for i in range(wrong_words):  # one wrong word in each of the first utterances, wrapping round
        kind, ref, hyp = items[i % 10]
        words = hyp.split()
        words[i // 10] = "x"
        items[i % 10] = (kind, ref, " ".join(words))
    grade = grade_model("m", [evaluation("speech", items, rtf=rtf)])
    assert grade.grade == expected
    assert criterion in grade.reason


def test_hallucination_on_nonspeech_caps_at_c_with_the_evidence():
    noise = [("nonspeech", "", ""), ("nonspeech", "", " You")] + [("nonspeech", "", "")] * 8
    grade = grade_model("tiny", [evaluation("speech", SPEECH_OK), evaluation("noise", noise)])
    assert grade.grade == "C" and not grade.production_ready
    assert grade.reason.startswith("hallucinated on 1/10 [0.02-0.40] non-speech clips: u1 'You'")
    assert "WER/RTF alone: A+" in grade.reason


def test_speech_hallucination_rate_above_the_bound_caps():
    speech = list(SPEECH_OK)
    speech[0] = ("speech", "turn left at the next corner", "turn left at the next corner thanks for watching")
    assert grade_model("m", [evaluation("speech", speech)]).grade == "C"        # 1/10 > 5%
    lenient = GradePolicy(max_hallucination_rate=0.2)
    assert grade_model("m", [evaluation("speech", speech)], lenient).grade != "C"


def test_a_model_already_below_the_cap_keeps_its_grade_and_says_why():
    bad = [("speech", "turn left at the next corner", "turn right on the last bend")] * 10
    noise = [("nonspeech", "", "dog")] + [("nonspeech", "", "")] * 9
    grade = grade_model("m", [evaluation("speech", bad), evaluation("noise", noise)])
    assert grade.grade == "F" and "also hallucinated on 1/10 [0.02-0.40] non-speech clips" in grade.reason


def test_figures_with_too_few_samples_do_not_grade():
    few = [("speech", "turn left at the next corner", "turn right on the last bend")] * 3
    grade = grade_model("m", [evaluation("speech", few), evaluation("noise", [("nonspeech", "", "dog")])])
    assert grade.grade == "n/a" and not grade.judged and not grade.production_ready
    assert grade.reason.startswith("error rates not judged: speech too few to judge (n = 3 < 10)")
    # enough speech, one non-speech clip: graded on the speech; the clip is shown, not used for the cap
    grade = grade_model("m", [evaluation("speech", SPEECH_OK), evaluation("noise", [("nonspeech", "", "dog")])])
    assert grade.grade == "A" and "hallucinated on 1/1 [0.21-1.00] non-speech clips, not judged: too few to judge (n = 1 < 10)" in grade.reason
    assert "(too few to judge (n = 1 < 10) non-speech clips)" in grade.reason


def test_nothing_evaluated_is_f():
    assert grade_model("m", []).grade == "F"


def test_policy_from_pyproject_table():
    policy = GradePolicy.from_table({"min_grade": "B", "levels": {"A+": {"wer": 0.02}}}, "[g]")
    assert policy.min_grade == "B" and policy.levels["A+"] == {"wer": 0.02, "rtf": 0.2}
    for table, problem in [({"min_grade": "E"}, "unknown grade"), ({"levels": {"Z": {}}}, "unknown grade"),
                           ({"levels": {"A": {"bleu": 1}}}, "only wer and rtf"), ({"colour": 1}, "unknown key")]:
        with pytest.raises(SpeechlabError, match=problem):
            GradePolicy.from_table(table, "[g]")


# -- through pytest ----------------------------------------------------------------------------


def test_min_grade_fails_readiness_with_the_reason(speechlab_project):
    data = speechlab_project.path / "data"
    write_audio(data / "silence.wav", 2.5, level=0.0)
    write_manifest(data / "noise.jsonl", [{"id": "silence", "audio": "silence.wav", "kind": "nonspeech"}])
    speechlab_project.makeconftest(
        (speechlab_project.path / "conftest.py").read_text().replace('TEXTS = {', 'TEXTS = {\n    "2.50": "you",')
    )
    result = speechlab_project.runpytest(
        "suites/test_readiness.py", "--speechlab-min-grade", "A", "--speechlab-model", "fake/perfect",
        "--speechlab-model", "fake/sloppy", "--speechlab-dataset", str(data / "manifest.jsonl"),
        "--speechlab-dataset", str(data / "noise.jsonl"),
    )
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert ("fake/perfect graded C, below the required A: hallucinated on 1/2 [0.09-0.91] non-speech clips: silence 'you'"
            in text)
    assert ("fake/sloppy graded D, below the required A: WER 0.333 on data/manifest.jsonl > 0.25 needed for C; "
            "also hallucinated on 1/2 [0.09-0.91] non-speech clips") in text
    assert "readiness grades:" in text


def test_min_grade_passes_a_model_at_or_above_it(speechlab_project):
    result = speechlab_project.runpytest("suites/test_readiness.py", "--speechlab-min-grade", "A")
    result.assert_outcomes(passed=1)
    assert "fake/perfect: A+:" in result.stdout.str()


def test_unknown_min_grade_is_a_usage_error(speechlab_project):
    result = speechlab_project.runpytest("suites", "--speechlab-min-grade", "E")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
