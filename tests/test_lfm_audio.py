"""The LFM2.5-Audio adapter, against a stand-in with liquid-audio's API surface (the real package
needs Python >= 3.12 and weights nobody can download here), and against the real package when it is
importable and weights are given."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_speechlab import Registry, Runner, build_registry, make_plugin_manager
from pytest_speechlab.engine.runner import ModelPool
from pytest_speechlab.tasks.chat import Prompt

from helpers import REPO

torch = pytest.importorskip("torch", reason="the adapter test needs torch==2.13.0 (README)")
PLUGIN_DIR = REPO / "model_plugins" / "lfm-audio"


@pytest.fixture
def lfm(monkeypatch, tmp_path):
    """The adapter module with the stand-in as liquid_audio, and a local weights folder."""
    monkeypatch.syspath_prepend(str(REPO / "tests" / "stand_ins"))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    for name in ("liquid_audio", "speechlab_lfm_audio"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    stand_in = importlib.import_module("liquid_audio")
    stand_in.CALLS.clear()
    weights = tmp_path / "LFM2.5-Audio-1.5B"
    weights.mkdir()
    return importlib.import_module("speechlab_lfm_audio"), stand_in, weights


def registry_of(module) -> Registry:
    pm = make_plugin_manager()
    pm.register(module, name="speechlab-lfm-audio (source)")
    return build_registry(pm)


def test_registers_asr_and_chat_through_the_hook(lfm):
    module, _, _ = lfm
    registry = registry_of(module)
    assert registry.model("lfm2.5-audio/asr").task == "asr"
    assert registry.model("lfm2.5-audio/chat").task == "chat"
    assert registry.model("lfm2.5-audio/asr").params["device"] == "cuda"


def test_asr_passes_a_path_and_16_khz_audio_and_keeps_text_tokens_only(lfm):
    module, stand_in, weights = lfm
    registry = registry_of(module)
    registry.add_variants({"lfm-cpu": {"model": "lfm2.5-audio/asr", "model_path": str(weights), "device": "cpu",
                                       "dtype": "float32"}}, "test")
    loaded = ModelPool().get(registry.model("lfm-cpu"))
    audio = np.zeros(16000 * 2, dtype=np.float32)
    transcript = loaded.instance.transcribe(audio)
    assert transcript.text == stand_in.ASR_TRANSCRIPT  # the 8-codebook audio frame was skipped
    (_, processor_path, device), (_, model_path, dtype, _) = stand_in.CALLS[:2]
    assert isinstance(processor_path, Path) and model_path == weights and device == "cpu"
    assert dtype == torch.float32
    _, turns, max_new = stand_in.CALLS[2]
    assert [t["role"] for t in turns] == ["system", "user", "assistant"]
    assert turns[0]["text"] == "Perform ASR." and turns[1]["audio"] == [(32000, 16000)] and max_new == 512
    assert loaded.info["weights_path"] == str(weights) and loaded.info["device"] == "cpu"


def test_chat_streams_text_and_keeps_the_conversation(lfm):
    module, _, weights = lfm
    registry = registry_of(module)
    registry.add_variants({"lfm-chat": {"model": "lfm2.5-audio/chat", "model_path": str(weights)}}, "test")
    loaded = ModelPool().get(registry.model("lfm-chat"))
    prompt = Prompt("q", ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}))
    (call,) = Runner().run_unit(loaded, [prompt])
    out = call.invocation
    assert out.error == "" and out.value.text == "You said: What is 2+2?"
    assert out.value.tokens == len("You said: What is 2+2?") and out.first_token_seconds is not None


def test_missing_or_wrong_model_path_is_a_clear_load_error(lfm):
    module, _, _ = lfm
    registry = registry_of(module)
    pool = ModelPool()
    with pytest.raises(Exception, match="needs model_path: a local folder"):
        pool.get(registry.model("lfm2.5-audio/asr"))
    registry.add_variants({"lfm-bad": {"model": "lfm2.5-audio/asr", "model_path": "/nonexistent/lfm"}}, "test")
    with pytest.raises(Exception, match="is not a folder"):
        pool.get(registry.model("lfm-bad"))


def test_real_liquid_audio_when_installed():
    if sys.version_info < (3, 12):
        pytest.skip("liquid-audio needs Python >= 3.12 (this is "
                    f"{sys.version_info.major}.{sys.version_info.minor}); the stand-in tests cover the adapter")
    pytest.importorskip("liquid_audio", reason="liquid-audio is not installed (pip install ./model_plugins/lfm-audio)")
    weights = os.environ.get("SPEECHLAB_LFM_AUDIO_PATH")
    if not weights:
        pytest.skip("set SPEECHLAB_LFM_AUDIO_PATH to a local LFM2.5-Audio-1.5B folder to run the real model")
    import speechlab_lfm_audio
    from pytest_speechlab._builtin import fixtures_dir
    import soundfile as sf
    import soxr

    model = speechlab_lfm_audio.LFMAudioASR({"model_path": weights,
                                              "device": "cuda" if torch.cuda.is_available() else "cpu"})
    audio, rate = sf.read(fixtures_dir() / "speech" / "s09_bridge.flac", dtype="float32")
    text = model.transcribe(soxr.resample(audio, rate, 16000).astype(np.float32)).text
    assert "bridge" in text.lower(), text
