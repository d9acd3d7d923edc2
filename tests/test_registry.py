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


def test_duplicate_and_invalid_registrations():
    def first(register):
        register("dup", task="asr", load=load_nothing)

    def second(register):
        register("dup", task="asr", load=load_nothing)
        register("bad-task", task="juggling", load=load_nothing)

    pm = make_plugin_manager([])
    pm.register(plugin(speechlab_register_models=first), name="first")
    pm.register(plugin(speechlab_register_models=second), name="second")
    with pytest.warns(SpeechlabPluginWarning) as record:
        registry = build_registry(pm)
    text = " ".join(str(w.message) for w in record)
    assert "already registered" in text
    assert registry.model("dup").plugin in ("first", "second")


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
    ('[tool.speechlab.thresholds]\nwer = "low"\n', "must be a non-negative number"),
    ('[tool.speechlab.thresholds]\nbleu = 0.3\n', "unknown metric 'bleu'"),
    ('[tool.speechlab]\nnormalizer = "shouty"\n', "normalizer 'shouty' is unknown"),
    ('[tool.speechlab\n', "invalid TOML"),
])
def test_bad_configuration_is_reported(tmp_path, toml, problem):
    (tmp_path / "pyproject.toml").write_text(toml)
    with pytest.raises(SpeechlabError, match=problem):
        load_config(tmp_path / "pyproject.toml")


def test_every_hook_is_documented_with_its_parameters():
    hooks = [f for name, f in inspect.getmembers(_hookspecs, inspect.isfunction) if name.startswith("speechlab_")]
    assert hooks
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        for param in inspect.signature(hook).parameters:
            assert f":param {param}:" in doc, f"{hook.__name__} does not document {param!r}"
