"""Which models and datasets the tests run on: checked at session start, parametrized, deselected."""
from __future__ import annotations

import re

import pytest

from .._audio import header_duration
from .._types import SpeechlabError
from . import comparisons, fixtures, gate, robustness, tts_chat
from .recording import check_report_paths
from .session import _usage, session_key


def pytest_sessionstart(session: pytest.Session) -> None:
    """Check an explicit selection before collection, so a typo is a usage error, not N errors."""
    config = session.config
    speechlab = config.stash[session_key]
    engine = speechlab.engine
    try:
        if config.option.speechlab_models or config.getini("speechlab_models"):
            engine.selected_models()
        if config.option.speechlab_datasets or config.getini("speechlab_datasets"):
            for ref in engine.selected_datasets():
                engine.dataset(ref)
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
    session = metafunc.config.stash[session_key].engine
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


FIXTURES = frozenset(name for module in (fixtures, tts_chat, gate, comparisons, robustness) for name in module.__all__)
XDIST = ("pytest-speechlab: pytest-xdist (-n) would build every model in every xdist worker and evaluate "
         "each model x dataset once per worker that touches it (duplicated work and runs in the results "
         "database). Run the suites without -n and use --speechlab-workers N: one evaluation, its model calls "
         "shared among N processes, one run recorded.")


def uses_speechlab(item: pytest.Item) -> bool:
    """Whether a test uses the plugin's fixtures (an evaluation suite)."""
    return not FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Evaluation suites are refused under pytest-xdist before any model is built (other tests run
    with -n as usual). Each refused test errors with the reason: xdist turns a usage error raised in a
    worker into an internal error."""
    if hasattr(item.config, "workerinput") and uses_speechlab(item):
        pytest.fail(XDIST, pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests whose dataset filter (speechlab_datasets(kind=...)) matched no dataset, rather
    than reporting them as skipped: a non-speech test has nothing to do on a speech-only set."""
    def empty(item: pytest.Item) -> bool:
        return uses_speechlab(item) and any(
            str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
            for m in item.iter_markers("skip")
        )

    # each feature says which of the plugin's fixtures have nothing to do this session
    engine = config.stash[session_key].engine
    try:
        idle = set().union(*(feature.idle() for feature in engine.features.values()))
    except SpeechlabError as exc:  # the registry, built here at the latest: a broken hook of this project
        raise _usage(exc) from None
    if not config.option.speechlab_properties:
        idle.add("speechlab_metamorphic")
    unwanted = [item for item in items if empty(item) or not idle.isdisjoint(getattr(item, "fixturenames", ()))]
    if unwanted:
        config.hook.pytest_deselected(items=unwanted)
        items[:] = [item for item in items if item not in unwanted]
