"""Plugin registration: inline plugins, broken plugins, duplicates, variants, documented hooks."""
from __future__ import annotations

import inspect
import types

import pytest

from pytest_speechlab import (
    SpeechlabError,
    SpeechlabPluginWarning,
    build_registry,
    hookimpl,
    load_config,
    make_plugin_manager,
)
from pytest_speechlab import _hookspecs


def plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def load_nothing(params):
    return params


def test_inline_plugin_registers_a_model_and_a_dataset(tmp_path):
    def models(register):
        register("inline/asr", task="asr", load=load_nothing, backend="inline", weights="here",
                 params={"beam_size": 2})

    def datasets(register):
        register("inline/data", path=tmp_path / "m.jsonl", description="mine")

    pm = make_plugin_manager([plugin(speechlab_register_models=models, speechlab_register_datasets=datasets)])
    registry = build_registry(pm)
    spec = registry.model("inline/asr")
    assert (spec.task, spec.backend, spec.weights, spec.params) == ("asr", "inline", "here", {"beam_size": 2})
    assert spec.load({"x": 1}) == {"x": 1}
    assert registry.datasets["inline/data"].path == str(tmp_path / "m.jsonl")
    # the built-in plugin goes through the same hook
    assert {"speechlab/speech", "speechlab/nonspeech"} <= set(registry.datasets)


def test_a_plugin_that_raises_warns_with_its_name_and_the_others_still_register():
    def broken(register):
        raise ImportError("no module named 'missing_backend'")

    def fine(register):
        register("fine/asr", task="asr", load=load_nothing)

    pm = make_plugin_manager([])
    pm.register(plugin(speechlab_register_models=broken), name="broken-plugin")
    pm.register(plugin(speechlab_register_models=fine), name="fine-plugin")
    with pytest.warns(SpeechlabPluginWarning, match="'broken-plugin' raised in speechlab_register_models.*missing_backend"):
        registry = build_registry(pm)
    assert registry.model("fine/asr").plugin == "fine-plugin"


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    def first(register):
        register("dup", task="asr", load=load_nothing)

    def second(register):
        register("dup", task="asr", load=load_nothing)

    pm = make_plugin_manager([])
    pm.register(plugin(speechlab_register_models=first), name="first")
    pm.register(plugin(speechlab_register_models=second), name="second")
    with pytest.raises(SpeechlabError, match=r"'dup' is registered by both plugin 'first' and plugin 'second'.*variant"):
        build_registry(pm)


def test_invalid_registration_skips_that_plugin_with_a_warning():
    def bad(register):
        register("bad-task", task="juggling", load=load_nothing)

    pm = make_plugin_manager([])
    pm.register(plugin(speechlab_register_models=bad), name="bad")
    with pytest.warns(SpeechlabPluginWarning, match="unknown task 'juggling'"):
        registry = build_registry(pm)
    assert "bad-task" not in registry.models


def test_variants_from_pyproject_merge_parameters_and_keep_the_base(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.speechlab.models.quick]\nmodel = "base/asr"\nbeam_size = 1\nvad_filter = true\n'
        '[tool.speechlab.thresholds.models."base/asr"]\nwer = 0.3\n'
    )

    def models(register):
        register("base/asr", task="asr", load=load_nothing, params={"beam_size": 5, "language": "en"})

    config = load_config(tmp_path / "pyproject.toml")
    registry = build_registry(make_plugin_manager([plugin(speechlab_register_models=models)]))
    registry.add_variants(config.variants, config.source)
    quick = registry.model("quick")
    assert quick.params == {"beam_size": 1, "language": "en", "vad_filter": True}
    assert quick.base == "base/asr"
    assert config.threshold("wer", "quick", quick.base) == 0.3  # inherited from the base model
    assert config.threshold("cer", "quick", quick.base) == config.thresholds["cer"]


def test_unknown_model_lists_the_known_ones():
    registry = build_registry(make_plugin_manager([]))
    with pytest.raises(SpeechlabError, match="unknown model 'nope'.*--speechlab-list-models"):
        registry.model("nope")


@pytest.mark.parametrize("toml, problem", [
    ('[tool.speechlab.thresholds]\nwer = "low"\n', r"thresholds\]\.wer must be a number, got a string 'low'"),
    ('[tool.speechlab.thresholds]\nwer = -1\n', "must be a finite non-negative number"),
    ('[tool.speechlab.thresholds]\nwer = nan\n', r"thresholds\]\.wer must be a finite non-negative number, got nan"),
    ('[tool.speechlab.thresholds]\nrtf = inf\n', "must be a finite non-negative number, got inf"),
    ('[tool.speechlab]\ndb_failure = "ignore"\n', "db_failure 'ignore': choose fail or warn"),
    ('[tool.speechlab.thresholds]\nbleu = 0.3\n', "unknown metric 'bleu'"),
    ('[tool.speechlab.thresholds]\nwre = 0.3\n', "unknown metric 'wre' \\(did you mean 'wer'\\?\\)"),
    ('[tool.speechlab]\nnormalizer = "shouty"\n', "normalizer 'shouty' is unknown"),
    ('[tool.speechlab]\nnormalizer = 5\n', "normalizer must be a string, got an integer 5"),
    ('[tool.speechlab\n', "invalid TOML"),
    # misspelled tables and keys name the nearest valid one
    ('[tool.speechlab.threshold]\nwer = 0.1\n', "unknown key 'threshold' \\(did you mean 'thresholds'\\?\\)"),
    ('[tool.speechlab]\nnormaliser = "speechlab-english"\n', "unknown key 'normaliser' \\(did you mean 'normalizer'\\?\\)"),
    ('[tool.speechlab.hallucination]\ninsertion_runs = 4\n', "did you mean 'insertion_run'"),
    ('[tool.speechlab.regression]\nalfa = 0.01\n', "did you mean 'alpha'"),
    # wrong TOML types: one clear error at start, never a TypeError later
    ('[tool.speechlab.hallucination]\ninsertion_run = "four"\n', "insertion_run must be an integer, got a string"),
    ('[tool.speechlab.hallucination]\ndisabled = "high_wer"\n', "disabled must be a list of strings"),
    ('[tool.speechlab.regression]\nalpha = "0.05"\n', "alpha must be a number, got a string"),
    ('[tool.speechlab.regression]\ncorrection = "bonferoni"\n', "correction 'bonferoni' is unknown"),
    ('[tool.speechlab.regression]\nalpha = 2\n', "alpha must be between 0 and 0.5"),
    ('[tool.speechlab.grades]\nmax_hallucination_rate = true\n', "must be a number, got a boolean"),
    ('[tool.speechlab.grades]\nlevels = 3\n', "levels must be a table"),
    ('[tool.speechlab.grades.levels.A]\nwer = "x"\n', r"levels\.A\.wer must be a number"),
    ('[tool.speechlab.tts]\ntexts = "speechlab/tts-texts"\n', "texts must be a list of strings"),
    ('[tool.speechlab.tts.sanity]\nclip_level = []\n', "clip_level must be a number, got a list"),
    ('[tool.speechlab.chat]\nmin_pass_rate = "high"\n', "min_pass_rate must be a number"),
    ('[tool.speechlab]\nthresholds = 3\n', r"thresholds\] must be a table"),
    ('[tool.speechlab]\nmodels = 3\n', r"models\] must be a table"),
    ('[tool.speechlab.models]\nx = 3\n', r"models\.x\] must be a table"),
    ('[tool.speechlab]\ndb = 7\n', "db must be a string"),
    ('[tool.speechlab]\nutterance_timeout = "1m"\n', "utterance_timeout must be a number"),
    ('[tool.speechlab]\nutterance_timeout = 0\n', "utterance_timeout must be a positive number"),
    ('[tool.speechlab]\nretime = -1\n', r"retime -1: give the number of utterances to time again \(0: speed is not judged"),
    ('[tool.speechlab]\nretime = "all"\n', "retime must be an integer, got a string"),
])
def test_bad_configuration_is_reported(tmp_path, toml, problem):
    (tmp_path / "pyproject.toml").write_text(toml)
    with pytest.raises(SpeechlabError, match=problem):
        load_config(tmp_path / "pyproject.toml")


def test_thresholds_for_an_unregistered_model(tmp_path):
    """A near miss of a registered name is a typo: an error naming the nearest; a name like no other
    is most likely a plugin not installed here: reported, not fatal."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.speechlab.thresholds.models."faster-whisper/tiny.em"]\nwer = 0.1\n')
    config = load_config(tmp_path / "pyproject.toml")
    with pytest.raises(SpeechlabError, match="no model 'faster-whisper/tiny.em' is registered \\(did you mean 'faster-whisper/tiny.en'"):
        config.check_models({"faster-whisper/tiny.en", "pocketsphinx"})
    (tmp_path / "pyproject.toml").write_text('[tool.speechlab.thresholds.models."espeak-ng/en-us"]\nwer = 0.1\n')
    absent = load_config(tmp_path / "pyproject.toml").check_models({"faster-whisper/tiny.en"})
    assert len(absent) == 1 and "is its plugin installed?" in absent[0]


def test_a_variant_cannot_take_a_registered_name_or_an_unknown_base(tmp_path):
    def models(register):
        register("base/asr", task="asr", load=load_nothing)

    pm = make_plugin_manager([])
    pm.register(plugin(speechlab_register_models=models), name="p")
    registry = build_registry(pm)
    with pytest.raises(SpeechlabError, match="already a model of plugin 'p'"):
        registry.add_variants({"base/asr": {"model": "base/asr", "beam_size": 1}}, "pyproject.toml")
    with pytest.raises(SpeechlabError, match="'base/asd' is not registered \\(did you mean 'base/asr'"):
        registry.add_variants({"mine": {"model": "base/asd"}}, "pyproject.toml")
    # a variant of a model like none registered: its plugin may not be installed here (a warning)
    (absent,) = registry.add_variants({"chunked": {"model": "someone-else/whisper-xl"}}, "pyproject.toml")
    assert "model 'someone-else/whisper-xl' is not registered (is its plugin installed?)" in absent
    assert "chunked" not in registry.models
    with pytest.raises(SpeechlabError, match="the variant 'chunked' is not available"):  # said when selected
        registry.model("chunked")


def test_a_projects_optional_models_warn_only_when_selected(speechlab_project):
    """A variant (or thresholds) of a model whose plugin is not installed here is not a warning in
    a run that does not select it (a newcomer's first run); selecting it is one clear error."""
    toml = speechlab_project.path / "pyproject.toml"
    toml.write_text(toml.read_text() + '\n[tool.speechlab.models.xl-chunked]\nmodel = "someone-else/whisper-xl"\n'
                    '[tool.speechlab.thresholds.models."espeak-ng/en-us"]\nwer = 0.2\n')
    result = speechlab_project.runpytest("suites/test_asr_accuracy.py")
    assert result.ret == 0
    assert "not registered" not in result.stdout.str() + result.stderr.str()
    selected = speechlab_project.runpytest("suites/test_asr_accuracy.py", "--speechlab-model", "xl-chunked")
    assert selected.ret == pytest.ExitCode.USAGE_ERROR
    assert ("[tool.speechlab.models.xl-chunked]: model 'someone-else/whisper-xl' is not registered (is its plugin "
            "installed?); the variant 'xl-chunked' is not available") in selected.stderr.str()


def test_every_hook_is_documented_with_its_parameters():
    hooks = [f for name, f in inspect.getmembers(_hookspecs, inspect.isfunction) if name.startswith("speechlab_")]
    assert hooks
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        for param in inspect.signature(hook).parameters:
            assert f":param {param}:" in doc, f"{hook.__name__} does not document {param!r}"


def test_an_instance_without_its_task_protocol_fails_once_at_load():
    from pytest_speechlab import ModelPool
    from pytest_speechlab._registry import ModelSpec
    from pytest_speechlab.engine.runner import ModelLoadError

    pool = ModelPool()
    spec = ModelSpec("not/asr", "asr", lambda params: object(), plugin="p")
    with pytest.raises(ModelLoadError, match=r"'not/asr' \(plugin 'p'\) loaded, but its instance \(object\) does not "
                                             r"implement the asr protocol \(ASRModel: transcribe"):
        pool.get(spec)
    with pytest.raises(ModelLoadError, match="does not implement the asr protocol"):  # once: remembered
        pool.get(spec)
