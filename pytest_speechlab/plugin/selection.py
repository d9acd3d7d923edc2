"""Which models and datasets the tests run on: checked at session start, parametrized, deselected."""
from __future__ import annotations

import re

import pytest

from .._audio import header_duration
from .._types import SpeechlabError
from .recording import check_report_paths
from .session import SpeechlabSession, _usage, session_key


def pytest_sessionstart(session: pytest.Session) -> None:
    """Check an explicit selection before collection, so a typo is a usage error, not N errors."""
    config = session.config
    speechlab = config.stash[session_key]
    try:
        if config.option.speechlab_models or config.getini("speechlab_models"):
            speechlab.selected_models()
        if config.option.speechlab_datasets or config.getini("speechlab_datasets"):
            for ref in speechlab.selected_datasets():
                speechlab.dataset(ref)
        check_report_paths(config)
        speechlab.check_gate()
    except SpeechlabError as exc:
        raise _usage(exc) from None



def test_id(name: str) -> str:
    """A parametrize id from a model or dataset name. Names come from plugins, configuration and
    file paths; pytest-html renders test ids as markup, so anything but word characters and
    ``. , : / + = @ ~ -`` becomes ``_`` (ordinary names such as "faster-whisper/tiny.en" are unchanged)."""
    return re.sub(r"[^\w.,:/+=@~-]", "_", name) or "_"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session: SpeechlabSession = metafunc.config.stash[session_key]
    names = set(metafunc.fixturenames)
    try:
        only = metafunc.definition.get_closest_marker("speechlab_models")
        for fixture, task in (("speechlab_model", "asr"), ("speechlab_tts_model", "tts"), ("speechlab_chat_model", "chat")):
            if fixture in names:
                models = session.selected_models(task)
                if only is not None and only.kwargs.get("service"):  # the latency suite: services only
                    models = [m for m in models if session.registry.model(m).service]
                metafunc.parametrize(fixture, models, indirect=True, scope="session", ids=list(map(test_id, models)))
        if "speechlab_tts_texts" in names:
            refs = session.settings.tts.texts
            metafunc.parametrize("speechlab_tts_texts", refs, indirect=True, scope="session", ids=list(map(test_id, refs)))
        if "speechlab_chat_prompts" in names:
            refs = session.settings.chat.prompts
            metafunc.parametrize("speechlab_chat_prompts", refs, indirect=True, scope="session", ids=list(map(test_id, refs)))
        if "speechlab_dataset" in names:
            refs = session.selected_datasets()
            marker = metafunc.definition.get_closest_marker("speechlab_datasets")
            kind = marker.kwargs.get("kind", marker.args[0] if marker.args else None) if marker else None
            if kind:
                refs = [r for r in refs if any(u.kind == kind for u in session.dataset(r).utterances)]
            longest = marker.kwargs.get("min_seconds") if marker else None
            if longest:  # long-form suites: datasets holding a recording at least this long
                refs = [r for r in refs if any(u.kind == "speech" and (u.duration or header_duration(u.audio_path)) >= longest
                                               for u in session.dataset(r).utterances)]
            ids = [test_id(session.dataset(r).name) for r in refs]
            metafunc.parametrize("speechlab_dataset", refs, indirect=True, scope="session", ids=ids)
    except SpeechlabError as exc:
        raise _usage(exc) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests whose dataset filter (speechlab_datasets(kind=...)) matched no dataset, rather
    than reporting them as skipped: a non-speech test has nothing to do on a speech-only set."""
    def empty(item: pytest.Item) -> bool:
        return any(name.startswith("speechlab_") for name in getattr(item, "fixturenames", ())) and any(
            str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
            for m in item.iter_markers("skip")
        )

    def needs_baseline(item: pytest.Item) -> bool:
        return "speechlab_regression" in getattr(item, "fixturenames", ()) and not config.option.speechlab_baseline

    def needs_two_models(item: pytest.Item) -> bool:
        return ("speechlab_runtime_comparison" in getattr(item, "fixturenames", ())
                and len(config.stash[session_key].selected_models("asr")) < 2)

    def needs_batch_size(item: pytest.Item) -> bool:
        return ("speechlab_batch_comparison" in getattr(item, "fixturenames", ())
                and not config.option.speechlab_batch_equivalence)

    def needs_robustness(item: pytest.Item) -> bool:
        return ("speechlab_robustness" in getattr(item, "fixturenames", ())
                and not (config.option.speechlab_robustness or config.stash[session_key].settings.robustness.enabled))

    def quality_off(item: pytest.Item) -> bool:
        return ("speechlab_tts_quality" in getattr(item, "fixturenames", ())
                and not config.stash[session_key].settings.tts.quality)

    def needs_properties(item: pytest.Item) -> bool:
        return "speechlab_metamorphic" in getattr(item, "fixturenames", ()) and not config.option.speechlab_properties

    unwanted = [item for item in items if empty(item) or needs_baseline(item) or needs_two_models(item)
                or needs_batch_size(item) or needs_robustness(item) or needs_properties(item) or quality_off(item)]
    if unwanted:
        config.hook.pytest_deselected(items=unwanted)
        items[:] = [item for item in items if item not in unwanted]
