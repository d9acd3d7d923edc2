"""Checking a metamorphic property: each of a few clips transcribed clean (the session's own
evaluation) and through a perturbation chain, the words that changed counted after the dataset's
normalizer. hypothesis (``properties``) draws the chains; this module needs no hypothesis, so the
``speechlab_metamorphic`` fixture costs nothing until a property uses it."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ._assertions import SpeechlabAssertionError
from ._audio import read_audio
from ._perturb import Perturbation, chain_label, heard
from ._types import Output, Utterance
from .metrics.wer import score_output
from .tasks.tts import write_wav


@dataclass
class Change:
    utterance_id: str
    words: int  # S+D+I of the perturbed transcript against the clean one, normalized
    clean: str
    perturbed: str
    audio_path: str = ""
    raw: object = field(default=None, repr=False)  # the perturbed audio (RawAudio)


@dataclass
class MetamorphicCheck:
    """A model and a few clips of a dataset: each clip's clean transcript (from the session's
    evaluation) against its transcript through a chain."""

    session: object
    model: object
    dataset: object
    folder: Path
    nodeid: Callable[[], str] = lambda: ""  # the test checking (its failures are kept per test)
    clips: int = 3
    failures: list = field(default_factory=list)  # (nodeid, what, chain, [Change]) of checks that failed

    def __post_init__(self):
        result = self.session.evaluate(self.model, self.dataset)
        processed = [u for u in result.processed if u.utterance.kind == "speech" and u.transcript is not None]
        # the shortest clips: a property is about the transform, and every example runs them all
        self.chosen = sorted(processed, key=lambda u: (u.audio_seconds, u.utterance.id))[: self.clips]
        self.normalizers = self.session.settings.language_normalizers(self.dataset.name)
        self._audio: dict[str, object] = {}  # each chosen clip read once, not once per example

    def __repr__(self) -> str:  # hypothesis prints the fixture with a failing example
        return f"MetamorphicCheck({self.model.name} on {self.dataset.name}, {len(self.chosen)} clips)"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis' printer walks dataclass fields otherwise
        printer.text(repr(self))

    def changes(self, chain: tuple[Perturbation, ...]) -> list[Change]:
        out = []
        for clean in self.chosen:
            utt = clean.utterance
            if utt.id not in self._audio:
                self._audio[utt.id] = read_audio(utt.audio_path, utt.offset, utt.duration)
            try:
                raw, _ = heard(self._audio[utt.id], chain, utt.id, getattr(self.model.instance, "sample_rate", 16000))
            except Exception as exc:  # noqa: BLE001 - the transform's failure, said as such
                raise SpeechlabAssertionError(f"{utt.id} through {chain_label(chain)}: the perturbation failed: "
                                              f"{type(exc).__name__}: {exc}") from None
            output = self.session.runner.transcribe_audio(self.model, utt.id, raw.samples, raw.sample_rate)
            if output.error is not None or output.transcript is None:
                raise SpeechlabAssertionError(f"{utt.id} through {chain_label(chain)}: {output.error}")
            reference = Utterance(utt.id, utt.audio_path, clean.hypothesis, language=utt.language)
            scored = score_output(Output(reference, output.transcript, audio_seconds=raw.duration), self.normalizers)
            words = scored.words.errors if scored.words is not None else len(scored.hypothesis_normalized.split())
            out.append(Change(utt.id, words, clean.hypothesis, output.transcript.text, raw=raw))
        return out

    def check(self, chain: tuple[Perturbation, ...], max_words: int, what: str = "") -> None:
        """Fail when a clip's transcript through ``chain`` differs from its clean one by more than
        ``max_words`` words. The failure (hypothesis' last, shrunk example) keeps its audio."""
        __tracebackhide__ = True
        if not self.chosen:  # a property over no clip would pass whatever the model does
            raise SpeechlabAssertionError(f"{self.model.name} on {self.dataset.name}: no transcribed speech clip "
                                          "to check the property on")
        changed = [c for c in self.changes(chain) if c.words > max_words]
        if not changed:
            return
        label = chain_label(chain)
        for c in changed:
            name = hashlib.sha256(f"{self.model.name}|{label}|{c.utterance_id}".encode()).hexdigest()[:16] + ".wav"
            c.audio_path = str(write_wav(self.folder, name, c.raw))
        nodeid = self.nodeid()
        self.failures[:] = [f for f in self.failures if f[0] != nodeid] + [(nodeid, what, label, changed)]
        raise SpeechlabAssertionError(
            f"{self.model.name}: {what or 'a perturbation'} ({label}) changed more than {max_words} word(s):\n"
            + "\n".join(f"  {c.utterance_id}: {c.words} words: clean {c.clean!r} -> {c.perturbed!r}" for c in changed))

    def evidence(self) -> list[dict]:
        """The failed checks (the last, smallest example of each test), for the HTML report."""
        return [{"nodeid": nodeid, "model": self.model.name, "what": what, "chain": label,
                 "changes": [{"utterance_id": c.utterance_id, "words": c.words, "clean": c.clean,
                              "perturbed": c.perturbed, "audio_path": c.audio_path} for c in changes]}
                for nodeid, what, label, changes in self.failures]
