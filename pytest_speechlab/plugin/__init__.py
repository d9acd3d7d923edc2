"""The pytest plugin (``pytest11`` entry point), thin glue split by concern the way pytest's own
plugins are: options (each feature's own come with it), selection, fixtures (the common ones; each
feature's in tts_chat, gate, comparisons, robustness, slices), the session (which holds the engine),
recording (outcomes, the database run, the report files), html (pytest-html) and terminal.

Imported by every pytest run in an environment where pytest-speechlab is installed, so it imports
nothing heavy: registries, manifests and models are built only when a test asks for them.
"""
from __future__ import annotations

import pytest

from .._types import SpeechlabError

# pytest finds fixtures as attributes of the plugin module (the star imports: fixtures.py and each feature's module)
from .comparisons import *  # noqa: F401,F403
from .fixtures import *  # noqa: F401,F403
from .gate import *  # noqa: F401,F403
from .html import HtmlReport
from .options import pytest_addoption  # noqa: F401
from .recording import Recorder
from .robustness import *  # noqa: F401,F403
from .selection import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_generate_tests,
    pytest_runtest_setup,
    pytest_sessionstart,
)
from .session import SpeechlabSession, _usage, session_key
from .slices import *  # noqa: F401,F403
from .terminal import pytest_cmdline_main, pytest_terminal_summary  # noqa: F401
from .tts_chat import *  # noqa: F401,F403


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "speechlab_datasets(kind, min_seconds): run this test only on datasets containing utterances of "
        "that kind ('speech' or 'nonspeech'), or a speech recording of at least min_seconds",
    )
    config.addinivalue_line(
        "markers", "speechlab_models(service=True): run this test only on models that are clients of a "
        "running service (the latency suite)")
    try:
        config.stash[session_key] = SpeechlabSession(config)
    except SpeechlabError as exc:
        raise _usage(exc) from None
    session = config.stash[session_key]
    config.pluginmanager.register(session, "speechlab-session")
    config.pluginmanager.register(Recorder(session), "speechlab-recorder")
    config.pluginmanager.register(HtmlReport(session), "speechlab-html")



def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:
        session.engine.pool.close()
        for name in ("speechlab-html", "speechlab-recorder", "speechlab-session"):
            plugin = config.pluginmanager.get_plugin(name)
            if plugin is not None:
                config.pluginmanager.unregister(plugin)
