"""Comparisons between selected models that should agree: the same weights on different runtimes
(greedy decoding on each), and a batching model at a batch size against batch 1."""
from __future__ import annotations

import contextlib

from ...batching import BatchComparison, batched_name
from ...crossruntime import (
    COMPARABLE_DECODE,
    RuntimeComparison,
    comparable_name,
    runtime_groups,
)
from ..runner import ModelLoadError, batch_size
from .base import Feature


class CrossRuntime(Feature):
    name = "cross_runtime"

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.comparisons: dict[str, object] = {}  # speech set -> [RuntimeComparison] or a reason

    def compare(self, dataset):
        """Each group of selected models that share weights, rebuilt with the same greedy decoding and
        evaluated on ``dataset``: a list of RuntimeComparison, or a str saying why there is none."""
        engine = self.engine
        if dataset.name not in self.comparisons:
            loaded = []
            for name in engine.selected_models("asr"):
                with contextlib.suppress(ModelLoadError):  # its own tests report the load failure
                    loaded.append(engine.pool.get(engine.registry.model(name)))
            comparisons = []
            for weights, members in runtime_groups(loaded).items():
                results = [engine.evaluate(engine.derived(member, comparable_name(member.name), COMPARABLE_DECODE,
                                                          "cross-runtime suite"), dataset) for member in members]
                comparisons.append(RuntimeComparison.of(weights, results))
            self.comparisons[dataset.name] = comparisons or (
                "no two selected models share weights on different runtimes (e.g. select "
                "faster-whisper/tiny.en, openai-whisper/tiny.en and transformers/tiny.en)")
        return self.comparisons[dataset.name]

    def idle(self) -> set[str]:
        return {"speechlab_runtime_comparison"} if len(self.engine.selected_models("asr")) < 2 else set()


class BatchEquivalence(Feature):
    name = "batching"
    options = ((("--speechlab-batch-equivalence",), dict(
        metavar="N", type=int, default=None,
        help="run the batch equivalence suite: each selected model with a batch method at batch size N "
        "against batch 1 (paired WER difference, differing transcripts, throughput of each).")),)

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.size: int | None = None  # the batch size compared with 1 (--speechlab-batch-equivalence)
        self.comparisons: dict[tuple, object] = {}  # (speech set, size) -> [BatchComparison] or a reason

    def configure(self, option) -> None:
        self.size = option.speechlab_batch_equivalence

    def compare(self, dataset):
        """Each selected ASR model that has a batch method, at ``size`` against batch 1 on
        ``dataset``: a list of BatchComparison, or a str saying why there is none."""
        engine, size = self.engine, self.size
        if not size:
            return "no batch size to compare: give --speechlab-batch-equivalence N"
        key = (dataset.name, size)
        if key not in self.comparisons:
            comparisons = []
            for name in engine.selected_models("asr"):
                with contextlib.suppress(ModelLoadError):  # its own tests report the load failure
                    loaded = engine.pool.get(engine.registry.model(name))
                    if not callable(getattr(loaded.instance, "transcribe_batch", None)) or batch_size(loaded) > 1:
                        continue
                    batched = engine.derived(loaded, batched_name(name, size), {"batch_size": size}, "batch equivalence suite")
                    comparisons.append(BatchComparison.of(engine.evaluate(loaded, dataset),
                                                          engine.evaluate(batched, dataset), size))
            self.comparisons[key] = comparisons or "no selected ASR model has a batch method (transcribe_batch)"
        return self.comparisons[key]

    def idle(self) -> set[str]:
        return set() if self.size else {"speechlab_batch_comparison"}
