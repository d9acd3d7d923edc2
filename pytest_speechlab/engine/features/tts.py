"""TTS evaluation: each text synthesized through the runner (timed, on the session's executor, kept in
the inference cache like any output), the audio checked, the judge's transcripts scored (the
round-trip evaluation is an ordinary EvalResult whose timing is the synthesis), perceptual quality
measured; a TTS model's grade is capped by what its TTS-only checks found."""
from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from pathlib import Path

from ..._audio import AudioError, read_audio
from ..._machine import environment
from ..._types import InputError, SpeechlabError, Utterance
from ...grading import cap_grade
from ...metrics.listening import correlation
from ...metrics.listening import mos as opinion
from ...metrics.quality import (
    QualityResult,
    centroid,
    missing_quality_library,
    mos,
    similarity,
    speaker_embedding,
)
from ...sinks.listening import clip_opinions
from ...tasks import TTS
from ...tasks.tts import audio_file_name, write_wav
from .base import Feature


class TTSFeature(Feature):
    name = "tts"
    options = ((("--speechlab-tts-judge",), dict(
        metavar="NAME", default=None,
        help="ASR model that transcribes synthesized speech for TTS intelligibility; "
        "default: [tool.speechlab.tts] judge, else faster-whisper/tiny.en.")),)

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.evals: dict[tuple[str, str], object] = {}  # (model, text set reference) -> TTSEval
        self.judge_name: str | None = None  # default: [tool.speechlab.tts] judge
        self._reference_speaker = None  # its centroid embedding, once
        self._opinions: dict[str, dict[str, list[float]]] = {}  # model -> listeners' ratings by clip digest

    def configure(self, option) -> None:
        self.judge_name = option.speechlab_tts_judge

    def text_set(self, ref: str):
        return self.engine.load_set(TTS, ref)

    def judge(self):
        """The ASR model that transcribes synthesized audio (built once, like any model)."""
        engine = self.engine
        return engine.pool.get(engine.registry.model(self.judge_name or engine.settings.tts.judge))

    def evaluate(self, loaded, ref: str, folder: Path):
        """Synthesize every text (timed) into ``folder``, check the audio, score the judge's transcripts."""
        import numpy as np

        key = (loaded.name, ref)  # the text set is named by its reference
        if key in self.evals:
            return self.evals[key]
        engine, texts, judge = self.engine, self.text_set(ref), self.judge()
        claims = TTS.again(loaded.instance) > 0
        calls, hits = engine.run_items(loaded, texts.items, f"{loaded.name} x {texts.name} (synthesis)")
        utterances, timing, problems, differing, errors, clips, paths = [], {}, {}, [], list(texts.errors), {}, {}
        for item, call in zip(texts.items, calls):
            out = call.invocation
            if out.error:
                errors.append(InputError(item.source, out.error, item.id))
                continue
            audio = out.value
            if found := TTS.score(audio, item.text, engine.settings.tts.sanity):
                problems[item.id] = found
            if out.again and not np.array_equal(audio.samples, out.again[0].samples):
                differing.append(item.id)
            path = write_wav(folder, audio_file_name(len(timing), item.id), audio)
            utterances.append(Utterance(item.id, str(path), item.text, duration=audio.seconds, source=item.source))
            timing[item.id] = (out.seconds, call.cached)
            clips[item.id], paths[item.id] = audio, path
        # speed is never judged on cached timings alone: a sample of the cached texts is synthesized again
        retimed = engine.retime_sample(loaded, texts.name, texts.items, hits) if hits and engine.retime else None
        quality = self.quality(clips) if engine.settings.tts.quality else None

        def synthesis_timing(output):
            # the synthesis's timing (measured here, or kept with it in the cache); the judge's
            # transcript may come from the cache too, and the note says so
            seconds, cached = timing[output.utterance.id]
            notes = output.notes + (("judge transcript from the inference cache",) if output.cached else ())
            return dataclasses.replace(output, processing_seconds=seconds, cached=cached, notes=notes)

        env = {**environment(loaded.info), "judge": judge.name,
               "timing": "synthesis timed per text; load and one warm-up call excluded"}
        result = engine.scored_run(loaded, judge, texts.name, utterances, errors, env, adjust=synthesis_timing,
                                   info={**loaded.info, "judge": judge.info}, retimed=retimed)
        engine.results[key] = result
        self.evals[key] = TTS.summarize(result, judge.name, claims, problems, differing, errors, str(folder), quality,
                                        dict(Counter(call.worker for call in calls if call.cached is None)))
        self.evals[key].listeners = self.listeners(loaded.name, paths, quality)
        engine.recorder.annotate(loaded.name, texts.name, "tts", self.evals[key].serialized())
        return self.evals[key]

    def opinions(self, model: str) -> dict[str, list[float]]:
        """Listeners' ACR ratings of ``model``'s clips by clip digest, read from the results database
        once per session (none without one)."""
        if model not in self._opinions:
            self._opinions[model] = clip_opinions(self.engine.recorder.open(), model)
        return self._opinions[model]

    def human_ratings(self, model: str) -> list[float]:
        """Listeners' ACR ratings of ``model``'s clips in the listening tests of the results database."""
        return [v for scores in self.opinions(model).values() for v in scores]

    def listeners(self, model: str, paths: dict[str, Path], quality: QualityResult | None) -> dict | None:
        """Listeners' ACR ratings of ``model``'s clips (any listening test); those of this run's clips
        (the same audio: the same content digest) beside the DNSMOS OVRL this run gave them, with the
        correlation over those clips. None when no clip of the model was rated."""
        import hashlib

        opinions = self.opinions(model)
        if not opinions:
            return None
        rated = {item: opinions[d] for item, path in paths.items()
                 if (d := hashlib.sha256(path.read_bytes()).hexdigest()) in opinions}
        found = {"mos": opinion([v for scores in opinions.values() for v in scores]), "clips": len(opinions),
                 "same_clips": len(rated)}
        scored = [item for item in rated if quality is not None and item in quality.mos]
        if scored:
            xs = [sum(rated[i]) / len(rated[i]) for i in scored]
            ys = [quality.mos[i]["ovrl"] for i in scored]
            found["beside"] = {"clips": len(scored), "listeners": sum(xs) / len(xs), "dnsmos": sum(ys) / len(ys),
                               **correlation(xs, ys), "points": [[x, y, i] for x, y, i in zip(xs, ys, scored)]}
        return found

    def quality(self, clips: dict) -> QualityResult:
        """DNSMOS of each synthesized clip, and each clip's speaker similarity to the reference
        speaker ([tool.speechlab.tts] reference_speaker), else to the centroid of the other clips."""
        problem = missing_quality_library()
        if problem:
            return QualityResult(problem=f"not measured: {problem}")
        result = QualityResult()
        embeddings = {}
        with self.engine.progress("perceptual quality (DNSMOS, speaker embedding)", len(clips)) as progress:
            for item, audio in clips.items():
                progress.advance(audio.seconds)
                try:
                    scores = mos(audio.samples, audio.sample_rate)
                    if scores is None:
                        result.silent.append(item)
                        continue
                    result.mos[item] = scores
                    embeddings[item] = speaker_embedding(audio.samples, audio.sample_rate)
                except Exception as exc:  # noqa: BLE001 - one clip the scorers choke on is that clip's problem
                    result.failed[item] = f"{type(exc).__name__}: {exc}"[:300]
        try:
            reference = self.reference_speaker()
        except SpeechlabError as exc:
            result.problem = f"not measured: {exc}"
            return result
        if reference is not None:
            result.reference = self.engine.settings.tts.reference_speaker
        else:
            result.reference = "the centroid of the voice's other clips (no reference_speaker set)"
        for item, embedding in embeddings.items():
            target = reference if reference is not None else centroid([e for i, e in embeddings.items() if i != item])
            value = similarity(embedding, target)
            if value is not None:
                result.similarity[item] = value
        return result

    def reference_speaker(self):
        """The centroid speaker embedding of [tool.speechlab.tts] reference_speaker's speech clips
        (a speech set, registered or a path; its first 20), or None when none is set."""
        ref = self.engine.settings.tts.reference_speaker
        if ref is None:
            return None
        if self._reference_speaker is None:
            clips = [u for u in self.engine.dataset(ref).utterances if u.kind == "speech"][:20]
            embeddings = []
            for utt in clips:
                with contextlib.suppress(AudioError):
                    raw = read_audio(utt.audio_path, utt.offset, utt.duration)
                    embeddings.append(speaker_embedding(raw.samples, raw.sample_rate))
            self._reference_speaker = centroid(embeddings)
            if self._reference_speaker is None:
                raise SpeechlabError(f"[tool.speechlab.tts] reference_speaker {ref!r}: no speech clip with a voice in it")
        return self._reference_speaker

    def idle(self) -> set[str]:
        return set() if self.engine.settings.tts.quality else {"speechlab_tts_quality"}

    def evaluations(self) -> list:
        return list(self.evals.values())

    def serialized(self) -> dict:
        return {"tts": [t.serialized() for t in self.evals.values()]}

    def cap(self, grade, model: str):
        tts = [e for (name, _), e in self.evals.items() if name == model]
        return cap_grade(grade, tts, self.engine.settings.grades, self.engine.thresholds(model)) if tts else grade
