"""Convert a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json) to the weights of
the other Whisper runtimes: a transformers ``WhisperForConditionalGeneration`` state dict and an
openai-whisper checkpoint. numpy only, except where torch is the output format.

model.bin layout (binary version 6, spec "WhisperSpec"): a header, then for each variable its name,
rank, dims, dtype id (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), byte count and raw data; then
aliases. Self-attention linear_0 is fused Q/K/V; cross-attention linear_0 is Q and linear_1 fused K/V;
gamma/beta are LayerNorm weight/bias.
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ._types import SpeechlabError

_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16"}


@dataclass
class CT2Whisper:
    variables: dict  # name -> numpy array
    dims: dict  # openai-whisper ModelDimensions fields
    folder: Path

    @property
    def multilingual(self) -> bool:
        return self.dims["n_vocab"] >= 51865


def read_ct2(folder: str | Path) -> CT2Whisper:
    import numpy as np

    folder = Path(folder)
    path = folder / "model.bin"
    with open(path, "rb") as fh:
        def unpack(fmt):
            size = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, fh.read(size))[0]

        def string():
            return fh.read(unpack("H"))[:-1].decode("utf-8")

        version = unpack("I")
        spec = string()
        unpack("I")  # spec revision
        if version != 6 or spec != "WhisperSpec":
            raise SpeechlabError(f"{path}: not a CTranslate2 Whisper model (version {version}, spec {spec!r})")
        variables = {}
        for _ in range(unpack("I")):
            name, rank = string(), unpack("B")
            dims = [unpack("I") for _ in range(rank)]
            dtype, size = unpack("B"), unpack("I")
            data = fh.read(size)
            if dtype not in _DTYPES:
                raise SpeechlabError(f"{path}: variable {name} has dtype id {dtype}, not supported")
            variables[name] = np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(dims)
        for _ in range(unpack("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]

    def layers(prefix):
        return len({m.group(1) for k in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", k))})

    emb = variables["decoder/embeddings/weight"]
    dims = {
        "n_mels": int(variables["encoder/conv1/weight"].shape[1]),
        "n_vocab": int(emb.shape[0]),
        "n_audio_ctx": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(emb.shape[1]),
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": layers("encoder"),
        "n_text_ctx": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(emb.shape[1]),
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": layers("decoder"),
    }
    return CT2Whisper(variables, dims, folder)


def _split(array, parts: int):
    import numpy as np

    return np.split(array, parts, axis=0)


def to_transformers(model: CT2Whisper) -> dict:
    """State dict (numpy, float32) for transformers' WhisperForConditionalGeneration."""
    v = model.variables
    sd = {
        "model.encoder.conv1.weight": v["encoder/conv1/weight"], "model.encoder.conv1.bias": v["encoder/conv1/bias"],
        "model.encoder.conv2.weight": v["encoder/conv2/weight"], "model.encoder.conv2.bias": v["encoder/conv2/bias"],
        "model.encoder.embed_positions.weight": v["encoder/position_encodings/encodings"],
        "model.encoder.layer_norm.weight": v["encoder/layer_norm/gamma"],
        "model.encoder.layer_norm.bias": v["encoder/layer_norm/beta"],
        "model.decoder.embed_tokens.weight": v["decoder/embeddings/weight"],
        "model.decoder.embed_positions.weight": v["decoder/position_encodings/encodings"],
        "model.decoder.layer_norm.weight": v["decoder/layer_norm/gamma"],
        "model.decoder.layer_norm.bias": v["decoder/layer_norm/beta"],
        "proj_out.weight": v["decoder/projection/weight"],
    }

    def ln(dst, src):
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def linear(dst, src):
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/weight"], v[f"{src}/bias"]

    def fused_self(dst, src):
        q, k, val = _split(v[f"{src}/linear_0/weight"], 3)
        qb, _, vb = _split(v[f"{src}/linear_0/bias"], 3)  # the K bias is zero: transformers has none
        sd.update({f"{dst}.q_proj.weight": q, f"{dst}.q_proj.bias": qb, f"{dst}.k_proj.weight": k,
                   f"{dst}.v_proj.weight": val, f"{dst}.v_proj.bias": vb})
        linear(f"{dst}.out_proj", f"{src}/linear_1")

    for side in ("encoder", "decoder"):
        n = model.dims["n_audio_layer" if side == "encoder" else "n_text_layer"]
        for i in range(n):
            dst, src = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            fused_self(f"{dst}.self_attn", f"{src}/self_attention")
            ln(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            ln(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                k, val = _split(v[f"{src}/attention/linear_1/weight"], 2)
                _, vb = _split(v[f"{src}/attention/linear_1/bias"], 2)
                sd.update({f"{dst}.encoder_attn.k_proj.weight": k, f"{dst}.encoder_attn.v_proj.weight": val,
                           f"{dst}.encoder_attn.v_proj.bias": vb})
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
                ln(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
    return {k: a.astype("float32") for k, a in sd.items()}


def to_openai(model: CT2Whisper) -> dict:
    """State dict (numpy, float32) for openai-whisper's ``Whisper`` model."""
    hf = to_transformers(model)
    sd = {
        "encoder.conv1.weight": hf["model.encoder.conv1.weight"], "encoder.conv1.bias": hf["model.encoder.conv1.bias"],
        "encoder.conv2.weight": hf["model.encoder.conv2.weight"], "encoder.conv2.bias": hf["model.encoder.conv2.bias"],
        "encoder.positional_embedding": hf["model.encoder.embed_positions.weight"],
        "encoder.ln_post.weight": hf["model.encoder.layer_norm.weight"],
        "encoder.ln_post.bias": hf["model.encoder.layer_norm.bias"],
        "decoder.token_embedding.weight": hf["model.decoder.embed_tokens.weight"],
        "decoder.positional_embedding": hf["model.decoder.embed_positions.weight"],
        "decoder.ln.weight": hf["model.decoder.layer_norm.weight"], "decoder.ln.bias": hf["model.decoder.layer_norm.bias"],
    }
    names = {"q_proj": "query", "k_proj": "key", "v_proj": "value", "out_proj": "out"}
    blocks = {"self_attn": "attn", "encoder_attn": "cross_attn", "self_attn_layer_norm": "attn_ln",
              "encoder_attn_layer_norm": "cross_attn_ln", "final_layer_norm": "mlp_ln", "fc1": "mlp.0", "fc2": "mlp.2"}
    for key, array in hf.items():
        parts = key.split(".")
        if parts[0] != "model" or parts[2] != "layers":
            continue
        side, index, module, rest = parts[1], parts[3], parts[4], parts[5:]
        if module in ("self_attn", "encoder_attn"):
            rest = [names[rest[0]], rest[1]]
        sd[".".join([side, "blocks", index, blocks[module], *rest])] = array
    return sd


def _generation_config(src: Path, config: dict, english_only: bool) -> dict:
    """What transformers' Whisper generate needs, from the CT2 config and the tokenizer's special tokens."""
    ct2 = json.loads((src / "config.json").read_text())
    tokens = {t["content"]: t["id"] for t in json.loads((src / "tokenizer.json").read_text()).get("added_tokens", [])}
    generation = {
        "decoder_start_token_id": config["decoder_start_token_id"], "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"], "pad_token_id": config["pad_token_id"],
        "no_timestamps_token_id": tokens["<|notimestamps|>"], "max_initial_timestamp_index": 50,
        "suppress_tokens": ct2.get("suppress_ids", []), "begin_suppress_tokens": ct2.get("suppress_ids_begin", []),
        "alignment_heads": ct2.get("alignment_heads", []), "is_multilingual": not english_only,
        "max_length": config["max_target_positions"],
    }
    if not english_only:
        ids = set(ct2.get("lang_ids", []))
        generation["lang_to_id"] = {tok: i for tok, i in tokens.items() if i in ids}
        generation["task_to_id"] = {"transcribe": tokens["<|transcribe|>"], "translate": tokens["<|translate|>"]}
    return generation


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def transformers_folder(ct2_folder: str | Path, out: str | Path) -> Path:
    """Write config.json, model.safetensors, the tokenizer and preprocessor config; once (cached)."""
    out = Path(out)
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file():
        return out
    from safetensors.numpy import save_file

    model = read_ct2(ct2_folder)
    d = model.dims
    out.mkdir(parents=True, exist_ok=True)
    english_only = not model.multilingual
    eot = 50256
    sot = 50257 if english_only else 50258
    config = {
        "architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper",
        "vocab_size": d["n_vocab"], "num_mel_bins": d["n_mels"], "d_model": d["n_audio_state"],
        "encoder_layers": d["n_audio_layer"], "encoder_attention_heads": d["n_audio_head"],
        "decoder_layers": d["n_text_layer"], "decoder_attention_heads": d["n_text_head"],
        "encoder_ffn_dim": 4 * d["n_audio_state"], "decoder_ffn_dim": 4 * d["n_text_state"],
        "max_source_positions": d["n_audio_ctx"], "max_target_positions": d["n_text_ctx"],
        "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot, "decoder_start_token_id": sot,
        "activation_function": "gelu", "scale_embedding": False, "tie_word_embeddings": True,
        "torch_dtype": "float32", "use_cache": True,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    src = Path(ct2_folder)
    (out / "generation_config.json").write_text(json.dumps(_generation_config(src, config, english_only), indent=2))
    (out / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    (out / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": d["n_mels"], "sampling_rate": 16000,
        "hop_length": 160, "chunk_length": 30, "n_fft": 400, "padding_value": 0.0, "return_attention_mask": False,
    }))
    weights = to_transformers(model)
    weights.pop("proj_out.weight")  # tied to the token embedding
    _atomic_write(out / "model.safetensors", lambda p: save_file(weights, str(p), metadata={"format": "pt"}))
    return out


def openai_checkpoint(ct2_folder: str | Path, out: str | Path) -> Path:
    """Write an openai-whisper checkpoint (``torch.save({"dims", "model_state_dict"})``); once (cached)."""
    out = Path(out)
    if out.is_file():
        return out
    import torch

    model = read_ct2(ct2_folder)
    state = {k: torch.from_numpy(a.copy()) for k, a in to_openai(model).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, lambda p: torch.save({"dims": model.dims, "model_state_dict": state}, p))
    return out
