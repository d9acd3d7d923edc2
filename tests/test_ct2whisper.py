"""The CTranslate2 -> transformers / openai-whisper converter, on the packaged tiny.en weights."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from pytest_speechlab.ct2whisper import openai_checkpoint, read_ct2, to_openai, to_transformers, transformers_folder
from pytest_speechlab._builtin import fixtures_dir

torch = pytest.importorskip("torch", reason="the torch backends need torch==2.13.0 (README)")


@pytest.fixture(scope="module")
def tiny():
    from speechlab_faster_whisper import tiny_en_path

    return tiny_en_path()


def fixture_audio(name: str) -> np.ndarray:
    audio, rate = sf.read(fixtures_dir() / "speech" / f"{name}.flac", dtype="float32")
    return soxr.resample(audio, rate, 16000).astype(np.float32)


def test_reads_the_ct2_layout(tiny):
    model = read_ct2(tiny)
    assert model.dims == {"n_mels": 80, "n_vocab": 51864, "n_audio_ctx": 1500, "n_audio_state": 384,
                          "n_audio_head": 6, "n_audio_layer": 4, "n_text_ctx": 448, "n_text_state": 384,
                          "n_text_head": 6, "n_text_layer": 4}
    assert not model.multilingual
    assert model.variables["decoder/projection/weight"] is model.variables["decoder/embeddings/weight"]  # alias


def test_every_tensor_is_mapped_for_transformers(tiny, tmp_path):
    from transformers import WhisperForConditionalGeneration

    folder = transformers_folder(tiny, tmp_path / "hf")
    model, info = WhisperForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert set(info["missing_keys"]) <= {"proj_out.weight"}  # tied to the token embedding
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 37.8  # tiny.en, as RESOURCES.md states
    # the fused Q/K/V split lands where transformers expects it
    v = read_ct2(tiny).variables
    q = model.model.encoder.layers[0].self_attn.q_proj.weight.detach().numpy()
    assert np.array_equal(q, v["encoder/layer_0/self_attention/linear_0/weight"][:384].astype(np.float32))


def test_every_tensor_is_mapped_for_openai_whisper(tiny, tmp_path):
    import whisper
    from whisper.model import ModelDimensions, Whisper

    model = read_ct2(tiny)
    reference = Whisper(ModelDimensions(**model.dims)).state_dict()
    converted = to_openai(model)
    assert set(converted) == set(reference)
    assert all(tuple(converted[k].shape) == tuple(reference[k].shape) for k in reference)
    loaded = whisper.load_model(str(openai_checkpoint(tiny, tmp_path / "tiny.pt")), device="cpu")  # strict load
    assert loaded.dims.n_text_layer == 4
    assert len(to_transformers(model)) == len(converted) + 1  # proj_out (tied) is the one extra


def test_converted_models_reproduce_the_ct2_greedy_transcript(tiny, tmp_path):
    import whisper
    from faster_whisper import WhisperModel
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    audio = fixture_audio("s09_bridge")
    ct2 = WhisperModel(str(tiny), device="cpu", compute_type="float32", cpu_threads=1)
    segments, _ = ct2.transcribe(audio, beam_size=1, temperature=0.0, language="en", without_timestamps=True)
    expected = "".join(s.text for s in segments).strip()

    openai_model = whisper.load_model(str(openai_checkpoint(tiny, tmp_path / "tiny.pt")), device="cpu")
    got_openai = whisper.transcribe(openai_model, audio, temperature=0.0, fp16=False, without_timestamps=True,
                                    language="en")["text"].strip()

    folder = transformers_folder(tiny, tmp_path / "hf")
    hf = WhisperForConditionalGeneration.from_pretrained(folder)
    features = WhisperFeatureExtractor.from_pretrained(folder)(audio, sampling_rate=16000, return_tensors="pt")
    ids = hf.generate(features.input_features, num_beams=1)
    got_hf = WhisperTokenizerFast.from_pretrained(folder).batch_decode(ids, skip_special_tokens=True)[0].strip()

    assert expected == "The old stone bridge was closed for repairs last summer."
    assert got_openai == expected
    assert got_hf == expected


def test_conversion_is_cached(tiny, tmp_path):
    first = transformers_folder(tiny, tmp_path / "hf")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert transformers_folder(tiny, tmp_path / "hf") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
