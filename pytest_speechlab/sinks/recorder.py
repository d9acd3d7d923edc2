"""The results database as one session writes it (the first sink, written as the session goes):
the run row started at the first write, then each model's identity, progress, utterance rows in
batches, aggregates, test outcomes, grades and the finish.

One failure policy, the same as every other sink's: rows the database rejects are said and the
others kept; a database that fails is said once and the session goes on without recording, so that
nothing measured is lost (the figures still reach the terminal and the report files)."""
from __future__ import annotations

import warnings
from typing import Any, Callable

from .._text import redact
from .store import RowsRejected, Store


class RunRecorder:
    def __init__(self, url: str | None, metadata: Callable[[], dict], notices: list[str]) -> None:
        self.url = url  # None: nothing is recorded
        self._metadata = metadata  # the run row's fields, asked when the run starts
        self.notices = notices  # the session's notices (rejected rows are said there)
        self.store: Store | None = None
        self.run_id: str | None = None
        self.problem: str | None = None

    def open(self) -> Store | None:
        """The store, with this run's row started, once; a database problem warns, never stops."""
        if self.store is None and self.problem is None and self.url is not None:
            try:
                store = Store(self.url)
                self.run_id = store.start_run(self._metadata())
                self.store = store
            except Exception as exc:  # noqa: BLE001
                self._failed(exc)
        return self.store

    def _failed(self, exc: BaseException) -> None:
        self.store, self.problem = None, redact(f"results database not written: {type(exc).__name__}: {exc}")
        warnings.warn(self.problem, stacklevel=3)

    def _write(self, write: Callable[..., None], *args: Any) -> None:
        if self.open() is None:
            return
        try:
            write(self.store, self.run_id, *args)
        except RowsRejected as exc:  # the other rows were written: keep recording
            self.notices.append(redact(str(exc)))
            warnings.warn(self.notices[-1], stacklevel=3)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)

    def model(self, info: dict, load_seconds: float | None) -> None:
        self._write(Store.record_model, info, load_seconds)

    def progress(self, model: str, dataset: str, total: int) -> None:
        self._write(Store.record_progress, model, dataset, total)

    def utterances(self, model: str, dataset: str, rows: list[dict]) -> None:
        self._write(Store.record_utterances, model, dataset, rows)

    def aggregate(self, model: str, dataset: str, metrics: dict, environment: dict) -> None:
        self._write(Store.record_aggregate, model, dataset, metrics, environment)

    def annotate(self, model: str, dataset: str, key: str, value: Any) -> None:
        self._write(Store.annotate_aggregate, model, dataset, key, value)

    def outcomes(self, rows: list[dict]) -> None:
        self._write(Store.record_outcomes, rows)

    def grade(self, model: str, grade: str, reason: str) -> None:
        self._write(Store.record_grade, model, grade, reason)

    def finish(self) -> None:
        if self.run_id is not None:
            self._write(Store.finish_run)
