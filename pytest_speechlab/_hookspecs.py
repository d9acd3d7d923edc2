"""Hook specifications for model and dataset plugins.

A plugin is any module registered under the ``speechlab`` entry point group (or passed to
``PluginManager.register``) that implements some of these hooks with ``@hookimpl``.
"""
from __future__ import annotations

import pluggy

PROJECT_NAME = "speechlab"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -- registration: called once when the registry is built ------------------------------------


@hookspec
def speechlab_register_models(register):
    """Register the models this plugin provides.

    :param register: ``register(name, *, task, load, backend="", weights="", params=None,
        description="", service=False)``. ``name`` is what users select with ``--speechlab-model``.
        ``task`` is ``"asr"`` (``transcribe``), ``"tts"`` (``synthesize``), ``"chat"``
        (``respond``, optionally ``stream``) or ``"embedding"`` (``embed(texts)``, a judge for
        chat relevance). ``load(params: dict) -> model`` builds the model; it is
        called lazily, at most once per session, and is the only place heavy imports may happen.
        ``backend`` names the runtime (``"faster-whisper"``), ``weights`` says where the weights
        come from (a package, a path), ``params`` are the default load/decode parameters, which
        form part of the model's identity and can be overridden by variants in pyproject.
        ``service=True`` marks a client of a running service: the latency suite
        (``@pytest.mark.speechlab_models(service=True)``) runs on it, and a ``concurrency``
        parameter above 1 sends that many requests at once.
    """


@hookspec
def speechlab_register_datasets(register):
    """Register named datasets.

    :param register: ``register(name, *, path, description="", kind="speech set")``. A speech
        set's ``path`` is a JSONL manifest or a LibriSpeech-layout folder; users select it by
        ``name`` with ``--speechlab-dataset``. ``kind="TTS text set"`` registers a JSONL file of
        texts ([tool.speechlab.tts] texts), ``kind="chat prompt set"`` one of chat prompts
        ([tool.speechlab.chat] prompts); giving one where another kind is expected is an error.
    """


@hookspec
def speechlab_register_dataset_formats(register):
    """Register ways to read datasets (a file format or a folder layout).

    :param register: ``register(name, *, detect, load, description="")``. ``detect(path) -> bool``
        says cheaply whether a path is in this format (its extension, its first bytes);
        ``load(path, name) -> pytest_speechlab.Dataset`` reads it (problems with single lines go in
        ``Dataset.errors`` as ``InputError``). Plugin formats are tried before the built-in ones
        (JSONL, CSV/TSV, LibriSpeech folders).
    """


@hookspec
def speechlab_write_results(results):
    """A sink of a finished session's results (a tracking server, a dashboard, a chat message).

    :param results: what ``--speechlab-json`` writes (format ``pytest-speechlab-results/2``): the
        scorecard, every evaluation with its per-utterance records, chat, spoken and robustness
        results, and ``run``: the run as the results database holds it (None when nothing was
        recorded). Called after the results database has the finished run and the report files are
        written; an implementation that raises is said once in the summary (the session then
        fails) and costs no other sink its data.
    """


@hookspec
def speechlab_register_features(register):
    """Add features to every evaluation session (``docs/contributing.md`` shows one end to end).

    :param register: ``register(cls)``, ``cls`` a subclass of ``pytest_speechlab.Feature``
        with a ``name`` (an identifier): built once per session with the engine, reached by suites
        as ``speechlab_session.features[name]``; its ``serialized()`` sections go to the run file,
        its ``report_lines()`` to the terminal summary, its ``cap()`` limits grades and its
        ``idle()`` deselects the tests it has nothing to do for.
    """
