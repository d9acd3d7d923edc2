"""Language-aware scoring: a normalizer per language, CER for languages written without spaces,
one figure per language and their macro average as the headline (never a WER pooled across
languages), in the assertions, grades, the gate and the database."""
from __future__ import annotations

import json

import pytest

from pytest_speechlab import SpeechlabError
from pytest_speechlab._assertions import SpeechlabAssertionError, TooFewToJudge, check_below
from pytest_speechlab._config import load_config
from pytest_speechlab._types import Output, Transcript, Utterance
from pytest_speechlab.compare import Side, compare, family_size, judge
from pytest_speechlab.grading import grade_model
from pytest_speechlab.metrics.normalize import LanguageNormalizers, get_normalizer, units
from pytest_speechlab.metrics.stats import GatePolicy
from pytest_speechlab.metrics.wer import evaluate
from pytest_speechlab.sinks.store import Store
from pytest_speechlab.sinks.terminal import summary_lines


def output(uid: str, language: str | None, reference: str, hypothesis: str, kind: str = "speech") -> Output:
    return Output(utterance=Utterance(id=uid, audio_path="x.wav", text=reference, language=language, kind=kind),
                  transcript=Transcript(text=hypothesis), audio_seconds=2.0, processing_seconds=0.2)


def normalized(language: str, text: str, configured=None) -> str:
    normalizers = LanguageNormalizers.of(configured)
    return normalizers.for_language(language)(text)


# -- normalization per language -----------------------------------------------------------------


@pytest.mark.parametrize("language, text, expected", [
    ("pt", "Não sei, João!", "não sei joão"),  # accents kept (the English normalizer gives "nao")
    ("es", "¿Dónde está el niño?", "dónde está el niño"),
    ("de", "Straße [lachen] <unk> und Öl.", "straße und öl"),  # annotations dropped, ß and umlauts kept
    ("hi", "हिंदी में बात करो।", "हिंदी में बात करो"),  # vowel signs kept: four words stay four words
    ("ru", "Привет, мир!", "привет мир"),
    ("zh", "歡迎大家來體驗。", "欢迎大家来体验"),  # traditional -> simplified
    ("en", "Mr. Smith isn't here; it's 007.", "mister smith is not here it is 0 0 7"),
])
def test_each_language_gets_its_own_normalizer(language, text, expected):
    assert normalized(language, text) == expected


def test_whisper_basic_breaks_indic_words_where_speechlab_basic_does_not():
    assert len(get_normalizer("whisper-basic")("हिंदी में बात करो").split()) > 4
    assert len(get_normalizer("speechlab-basic")("हिंदी में बात करो").split()) == 4


def test_a_configured_name_applies_to_the_languages_it_is_written_for():
    english_only = LanguageNormalizers.of("whisper-english")
    assert english_only.name_for("en") == "whisper-english" and english_only.name_for("de") == "speechlab-basic"
    everywhere = LanguageNormalizers.of("lowercase")
    assert {everywhere.name_for(lang) for lang in ("en", "de", "zh")} == {"lowercase"}
    per_language = LanguageNormalizers.of({"*": "speechlab-english", "de": "whisper-basic"})
    assert per_language.name_for("de") == "whisper-basic" and per_language.name_for("fr") == "speechlab-basic"
    assert per_language.name_for("zh") == "speechlab-chinese"


@pytest.mark.parametrize("text, expected", [
    ("我用iphone 15", "我 用 iphone 15"),  # a Latin word inside Chinese is one unit
    ("これはテスト", "こ れ は テ ス ト"),
    ("สวัสดีครับ", "ส วั ส ดี ค รั บ"),  # a Thai vowel sign stays with its consonant
    ("", ""),
])
def test_unsegmented_text_splits_into_character_units(text, expected):
    assert units(text) == expected


def test_chinese_is_scored_in_characters_not_as_one_word_per_sentence():
    result = evaluate("m", "d", [output("a", "zh", "欢迎大家来体验达摩院", "欢迎大家来体验达摩园")])
    (u,) = result.utterances
    assert u.unit == "char" and u.words.reference_length == 10 and u.words.errors == 1
    assert result.headline == ("cer", 0.1, result.languages["zh"].ci)
    assert result.wer is None and result.cer == pytest.approx(0.1)
    assert result.summary()["error_metric"] == "cer"


def test_a_model_writing_traditional_characters_is_not_wrong_for_it():
    result = evaluate("m", "d", [output("a", "zh", "我认为跑步最重要", "我認為跑步最重要")])
    assert result.error_rate == 0.0


# -- per-language figures and the macro average -------------------------------------------------


def multilingual(minimum: int = 1):
    """Two utterances per language: judged here only because the minimum sample is lowered to
    ``minimum`` (the default, 10, leaves every language "too few to judge")."""
    return evaluate("m", "multi", [
        output("en1", "en", "the cat sat on the mat", "the cat sat on the hat"),  # 1/6
        output("en2", "en", "good morning everyone", "good morning everyone"),
        output("de1", "de", "guten morgen zusammen", "guten morgen"),  # 1/3
        output("de2", "de-AT", "das ist gut", "das ist gut"),
        output("zh1", "zh", "欢迎大家", "欢迎大家"),
        output("zh2", "zh", "我想问你", "我想问他"),  # 1/4
        output("n1", "", "", "thank you", kind="nonspeech"),
    ], min_samples={"wer": minimum, "cer": minimum})


def test_one_figure_per_language_and_their_macro_average_as_the_headline():
    result = multilingual()
    langs = result.languages
    assert list(langs) == ["de", "en", "zh"]  # de-AT scored as de
    assert langs["en"].rate == pytest.approx(1 / 9) and langs["en"].metric == "wer"
    assert langs["de"].rate == pytest.approx(1 / 6) and langs["zh"].metric == "cer"
    assert langs["zh"].rate == pytest.approx(1 / 8)
    metric, value, ci = result.headline
    assert metric == "macro" and value == pytest.approx((1 / 9 + 1 / 6 + 1 / 8) / 3)
    assert ci is None  # two utterances per language: no interval is ever printed as 95% on them
    # no WER pooled across languages anywhere in the serialized form
    summary = result.summary()
    assert summary["wer"] is None and summary["wer_ci"] is None and summary["error_rate"] == value
    assert [row["language"] for row in summary["languages"]] == ["de", "en", "zh"]
    assert summary["languages"][2]["normalizer"].startswith("speechlab-chinese")
    assert "en: speechlab-english" in result.normalizer and "zh: speechlab-chinese" in result.normalizer


def test_macro_interval_resamples_within_languages():
    from pytest_speechlab.metrics.stats import macro_ratio_ci

    # a language with no variation pins its share of the mean: the interval stays inside [0, 0.5]
    low, high = macro_ratio_ci([([0] * 8, [4] * 8), ([1, 4, 2, 0, 1, 2, 3, 1], [4] * 8)])
    assert 0 <= low <= 7 / 32 <= high <= 0.5
    assert macro_ratio_ci([]) is None
    assert macro_ratio_ci([([0, 0, 0], [4, 4, 4]), ([1, 4], [4, 4])]) is None  # a language of two clips


def test_a_language_with_too_few_clips_is_listed_never_averaged_into_the_macro():
    result = multilingual(minimum=2)
    assert result.headline[1] == pytest.approx((1 / 9 + 1 / 6 + 1 / 8) / 3)
    result = multilingual(minimum=3)  # the default minimum is 10: here every language has 2
    assert result.headline == ("macro", None, None) and len(result.unjudged_languages) == 3
    assert result.too_few("wer").startswith("too few to judge in every language (de n = 2, en n = 2, zh n = 2")
    assert result.languages["de"].too_few == "too few to judge (n = 2 < 3)" and result.languages["de"].ci is None
    summary = result.summary()
    assert summary["too_few"]["wer"] and summary["languages"][0]["too_few"] == "too few to judge (n = 2 < 3)"
    with pytest.raises(TooFewToJudge, match=r"not judged: too few to judge in every language"):
        check_below(result, "wer", 0.5)
    # one language below the minimum among judged ones: the macro is the others', and says so
    more = evaluate("m", "multi", [output(f"en{i}", "en", "a b c d", "a b c x") for i in range(3)]
                    + [output(f"de{i}", "de", "a b c d", "a b c d") for i in range(3)]
                    + [output("fr1", "fr", "a b", "x y")], min_samples={"wer": 3})
    assert more.error_rate == pytest.approx(0.125) and more.headline[2] is not None
    assert "macro average over 2 of 3 languages" in more.error_label and "fr n = 1" in more.error_label
    assert check_below(more, "wer", 0.3) == pytest.approx(0.125)  # fr (1.0) is not judged against the limit


def test_an_utterance_without_a_language_takes_the_dataset_default():
    result = evaluate("m", "d", [output("a", None, "guten Morgen", "guten morgen")],
                      LanguageNormalizers.of("speechlab-english", "de"))
    assert result.utterances[0].language == "de" and list(result.languages) == ["de"]
    assert evaluate("m", "d", [output("a", None, "hi", "hi")]).utterances[0].language == "en"


def test_the_threshold_fails_on_a_language_over_it_even_when_the_macro_average_passes():
    result = multilingual()
    assert check_below(result, "wer", 0.2) == pytest.approx(result.error_rate)
    with pytest.raises(SpeechlabAssertionError) as failed:
        check_below(result, "wer", 0.15)
    message = str(failed.value)
    assert "macro average over 3 languages" in message and "de WER 0.1667" in message
    assert "zh: 1 errors / 8 reference characters" in message


def test_grades_judge_each_language():
    grade = grade_model("m", [multilingual()])
    assert "[de]" in grade.reason and grade.grade == "C"  # de's 0.167 misses B's 0.15


def test_the_terminal_shows_one_row_per_language():
    lines = "\n".join(summary_lines([multilingual().serialized()], {}, width=200))
    assert "macro 95% CI" in lines and " 0.134 " in lines
    assert "per language" in lines and "CER 0.125" in lines and "WER 0.111" in lines


# -- the gate and the database ------------------------------------------------------------------


def test_the_gate_compares_each_language_on_its_own():
    before = Side.from_result("a", multilingual())
    worse = evaluate("m", "multi", [output(f"de{i}", "de", "das ist gut", "das ist schlecht") for i in range(30)]
                     + [output(f"en{i}", "en", "it is good", "it is good") for i in range(30)])
    base = evaluate("m", "multi", [output(f"de{i}", "de", "das ist gut", "das ist gut") for i in range(30)]
                    + [output(f"en{i}", "en", "it is good", "it is good") for i in range(30)])
    a, b = Side.from_result("base", base), Side.from_result("cand", worse)
    policy = GatePolicy()
    assert family_size([(a, b)], policy) == 3  # de, en, hallucination
    (cmp,) = judge([compare(a, b, policy, 3)], policy)
    assert cmp.wer is None and set(cmp.languages) == {"de", "en"}
    assert any(r.startswith("de error") for r in cmp.regressions)
    assert not any(r.startswith("en error") for r in cmp.regressions)
    assert family_size([(before, before)], policy) == 4


def test_the_database_keeps_a_row_per_language(tmp_path):
    result = multilingual()
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    run = store.start_run({})
    store.record_utterances(run, "m", "multi", [u.row() for u in result.utterances])
    store.record_aggregate(run, "m", "multi", result.summary(), {})
    rows = {r["language"]: r for r in store.run(run)["languages"]}
    assert set(rows) == {"de", "en", "zh"} and rows["zh"]["metric"] == "cer"
    assert rows["de"]["error_rate"] == pytest.approx(1 / 6) and rows["de"]["ci_low"] is None  # 2 clips: no interval
    assert {r["utterance_id"]: r["language"] for r in store.utterances(run)}["de2"] == "de"
    exported = store.export_run(run)
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    other.import_run(json.loads(json.dumps(exported)))
    assert len(other.run(run)["languages"]) == 3


# -- configuration and manifests ----------------------------------------------------------------


def test_language_configuration(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.speechlab]\nlanguage = "de"\n[tool.speechlab.normalizers]\nfr = "lowercase"\n'
        '[tool.speechlab.dataset_languages]\nspanish-set = "es-MX"\n')
    config = load_config(tmp_path / "pyproject.toml")
    assert config.language_normalizers("other").default_language == "de"
    assert config.language_normalizers("spanish-set").default_language == "es"
    assert config.language_normalizers("x").name_for("fr") == "lowercase"
    for bad, match in (('language = "english please"', "not a language code"),
                       ('[tool.speechlab.normalizers]\nde = "spanish"', "normalizer 'spanish' is unknown")):
        (tmp_path / "pyproject.toml").write_text(f"[tool.speechlab]\n{bad}\n")
        with pytest.raises(SpeechlabError, match=match):
            load_config(tmp_path / "pyproject.toml")


def test_a_manifest_language_that_is_not_a_code_is_that_utterance_s_input_error(tmp_path):
    from pytest_speechlab._dataset import load_dataset

    from helpers import write_audio, write_manifest

    write_audio(tmp_path / "a.wav", 0.5)
    manifest = write_manifest(tmp_path / "m.jsonl", [
        {"audio": "a.wav", "text": "hello", "language": "<b>en</b>"},
        {"audio": "a.wav", "text": "hello", "language": "pt-BR", "id": "ok"},
    ])
    dataset = load_dataset(manifest)
    assert [u.id for u in dataset.utterances] == ["ok"]
    assert len(dataset.errors) == 1 and "language code" in str(dataset.errors[0])
