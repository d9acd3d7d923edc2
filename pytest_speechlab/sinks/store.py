"""The results store: every run, its models, per-utterance outputs, aggregates, grades, outcomes.

SQLite (``.speechlab/results.db`` in WAL mode) by default; any SQLAlchemy URL otherwise (PostgreSQL
for CI runners that share history). The schema is versioned: ``MIGRATIONS[n]`` takes version n to
n + 1, applied in order inside one transaction when a store is opened. Utterances are written in
batches, each batch one transaction, so a run killed mid-way keeps everything written before the
kill; its status stays "incomplete" until the session finishes normally.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import uuid
from pathlib import Path
from typing import Any, Iterable

from .._machine import machine
from .._text import redact, storable
from .._types import SpeechlabError

SCHEMA_VERSION = 8
IN_PROGRESS_HOURS = 24  # an incomplete run younger than this may be in progress: prune keeps it
EXPORT_FORMAT = "pytest-speechlab-run/1"  # speechlab export
RESULTS_FORMAT = "pytest-speechlab-results/2"  # --speechlab-json: the figures, and the run as exported


def _schema(sa):
    md = sa.MetaData()
    text, integer, real, boolean, js = sa.Text, sa.Integer, sa.Float, sa.Boolean, sa.JSON
    tables = dict(
        schema_version=sa.Table("schema_version", md, sa.Column("version", integer, nullable=False)),
        runs=sa.Table(
            "runs", md,
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("started_at", text, nullable=False), sa.Column("finished_at", text),
            sa.Column("status", text, nullable=False),  # incomplete | complete
            sa.Column("git_commit", text), sa.Column("git_dirty", boolean), sa.Column("git_commit_time", text),
            sa.Column("host", text), sa.Column("cpu", text), sa.Column("python", text),
            sa.Column("packages", js), sa.Column("normalizer", text), sa.Column("config", js),
            sa.Column("imported_from", text),
        ),
        models=sa.Table(
            "models", md,
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("name", text, primary_key=True),
            sa.Column("backend", text), sa.Column("backend_version", text), sa.Column("weights", text),
            sa.Column("weights_sha256", text), sa.Column("params", js), sa.Column("info", js),
            sa.Column("load_seconds", real),
        ),
        utterances=sa.Table(
            "utterances", md,
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("model", text, primary_key=True),
            sa.Column("dataset", text, primary_key=True),
            sa.Column("utterance_id", text, primary_key=True),
            sa.Column("kind", text), sa.Column("source", text), sa.Column("reference", text),
            sa.Column("hypothesis", text), sa.Column("reference_normalized", text),
            sa.Column("hypothesis_normalized", text),
            sa.Column("hits", integer), sa.Column("substitutions", integer), sa.Column("deletions", integer),
            sa.Column("insertions", integer), sa.Column("char_errors", integer), sa.Column("char_length", integer),
            sa.Column("audio_seconds", real), sa.Column("processing_seconds", real),
            sa.Column("error", text), sa.Column("note", text), sa.Column("findings", js), sa.Column("segments", js),
            sa.Column("worker", text), sa.Column("threads", integer), sa.Column("batch_size", integer),
            sa.Column("language", text), sa.Column("audio_path", text), sa.Column("snr_db", real),
        ),
        aggregates=sa.Table(
            "aggregates", md,
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("model", text, primary_key=True),
            sa.Column("dataset", text, primary_key=True),
            sa.Column("metrics", js), sa.Column("environment", js),
        ),
        languages=sa.Table(  # one row per model x dataset x language: the figure each language is judged by
            "languages", md,
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("model", text, primary_key=True),
            sa.Column("dataset", text, primary_key=True),
            sa.Column("language", text, primary_key=True),
            sa.Column("metric", text), sa.Column("error_rate", real), sa.Column("ci_low", real), sa.Column("ci_high", real),
            sa.Column("scored", integer), sa.Column("reference_units", integer), sa.Column("normalizer", text),
            sa.Column("metrics", js),
        ),
        grades=sa.Table(
            "grades", md,
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("model", text, primary_key=True),
            sa.Column("grade", text), sa.Column("reason", text),
        ),
        outcomes=sa.Table(
            "outcomes", md,
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("nodeid", text, primary_key=True),
            sa.Column("outcome", text), sa.Column("duration", real), sa.Column("message", text),
        ),
        outputs=sa.Table(  # the inference cache (_cache.py): one model output per key
            "outputs", md,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("model", text), sa.Column("utterance_id", text), sa.Column("transcript", js),
            sa.Column("processing_seconds", real), sa.Column("audio_seconds", real), sa.Column("notes", js),
            sa.Column("run_id", sa.String(36)), sa.Column("cpu", text), sa.Column("host", text),
            sa.Column("created_at", text),
        ),
        progress=sa.Table(  # one row per evaluation as it starts: how many utterances it will have
            "progress", md,
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("model", text, primary_key=True),
            sa.Column("dataset", text, primary_key=True),
            sa.Column("total", integer), sa.Column("started_at", text),
        ),
        listening_tests=sa.Table(  # a listening test: its kind and the clips of each system per item
            "listening_tests", md,
            sa.Column("name", text, primary_key=True),
            sa.Column("kind", text), sa.Column("spec", js), sa.Column("created_at", text),
        ),
        ratings=sa.Table(  # one rater's answer to one item of a listening test
            "ratings", md,
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("test", text), sa.Column("rater", text), sa.Column("item", text),
            sa.Column("shown", js), sa.Column("score", js), sa.Column("created_at", text),
        ),
        baselines=sa.Table(
            "baselines", md,
            sa.Column("name", text, primary_key=True),
            sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
            sa.Column("set_at", text),
        ),
    )
    return md, tables


def _create(conn, sa, table) -> None:
    conn.execute(sa.schema.CreateTable(table, if_not_exists=True))


def _migrate_0_to_1(conn, sa, md, tables):
    for name, table in tables.items():
        if name != "schema_version":
            _create(conn, sa, table)


def _migrate_1_to_2(conn, sa, md, tables):
    """Names, ids and node ids become unbounded text: version 1 limited them to 200-1000
    characters, and on PostgreSQL one long id rejected its whole batch."""
    if conn.dialect.name != "postgresql":
        return  # SQLite never enforced the lengths
    for table, columns in (("models", ("name",)), ("utterances", ("model", "dataset", "utterance_id")),
                           ("aggregates", ("model", "dataset")), ("grades", ("model",)),
                           ("outcomes", ("nodeid",)), ("baselines", ("name",))):
        for column in columns:
            conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT"))


def _migrate_2_to_3(conn, sa, md, tables):
    _create(conn, sa, tables["outputs"])


NEW_IN_4 = (("worker", "TEXT"), ("threads", "INTEGER"), ("batch_size", "INTEGER"))


def _migrate_3_to_4(conn, sa, md, tables):
    """Where each output was computed: the worker, its threads and the batch size."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("utterances")}
    for column, kind in NEW_IN_4:
        if column not in have:  # a database created at version 0 already has them
            conn.execute(sa.text(f"ALTER TABLE utterances ADD COLUMN {column} {kind}"))


def _migrate_4_to_5(conn, sa, md, tables):
    """Each utterance's language and one row per model x dataset x language."""
    if "language" not in {c["name"] for c in sa.inspect(conn).get_columns("utterances")}:
        conn.execute(sa.text("ALTER TABLE utterances ADD COLUMN language TEXT"))
    _create(conn, sa, tables["languages"])


def _migrate_5_to_6(conn, sa, md, tables):
    """The commit's time (the viewer's trends go in commit order), each utterance's audio file (the
    viewer's player) and each evaluation's planned size (a run in progress shows how far it is)."""
    for table, column in (("runs", "git_commit_time"), ("utterances", "audio_path")):
        if column not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} TEXT"))
    _create(conn, sa, tables["progress"])


def _migrate_6_to_7(conn, sa, md, tables):
    """Each perturbed utterance's SNR as the model heard it."""
    if "snr_db" not in {c["name"] for c in sa.inspect(conn).get_columns("utterances")}:
        conn.execute(sa.text("ALTER TABLE utterances ADD COLUMN snr_db REAL"))


def _migrate_7_to_8(conn, sa, md, tables):
    """Listening tests and their ratings."""
    for name in ("listening_tests", "ratings"):
        _create(conn, sa, tables[name])


MIGRATIONS = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3, _migrate_3_to_4, _migrate_4_to_5, _migrate_5_to_6,
              _migrate_6_to_7, _migrate_7_to_8]  # MIGRATIONS[n] takes the schema from version n to n + 1


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def default_url(root: Path) -> str:
    return f"sqlite:///{root / '.speechlab' / 'results.db'}"


def normalize_url(value: str, root: Path) -> str:
    """A URL as given, or a file path for SQLite (relative to ``root``)."""
    if "://" in value:
        return value
    path = Path(value)
    return f"sqlite:///{path if path.is_absolute() else root / path}"


class RowsRejected(SpeechlabError):
    """Some rows of a batch were refused by the database; the others were written."""


class Store:
    BATCH = 16
    unreadable_outputs = 0  # cached outputs left out because their stored JSON could not be decoded

    def __init__(self, url: str, read_only: bool = False) -> None:
        """Open (and create or migrate) the store; ``read_only`` never creates, migrates or writes:
        a missing SQLite file or a database that is not a results store is a SpeechlabError."""
        import sqlalchemy as sa

        self.sa = sa
        self.url = url
        self.read_only = read_only
        kwargs: dict[str, Any] = {}
        try:
            parsed = sa.engine.make_url(url)
        except Exception as exc:  # noqa: BLE001
            raise SpeechlabError(f"results database {redact(url)!r}: not a database URL ({exc})") from None
        self.shown_url = redact(parsed.render_as_string(hide_password=True))  # and ?password=...
        sqlite = parsed.get_backend_name() == "sqlite"
        if sqlite:
            db = parsed.database
            if db and db != ":memory:":
                if read_only and not Path(db).is_file():
                    raise SpeechlabError(f"no results database at {db} (nothing has been recorded there: "
                                         "run `pytest suites/` first, or `speechlab import FILE`)")
                if not read_only:
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 60}
        else:  # a server restart or a proxy's idle timeout drops pooled connections: test each on checkout
            kwargs["pool_pre_ping"] = True
            if read_only and parsed.get_backend_name() == "postgresql":
                kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except Exception as exc:  # noqa: BLE001 - bad URL, missing driver
            raise SpeechlabError(f"results database {self.shown_url!r}: {type(exc).__name__}: {redact(exc)}") from None
        if sqlite:
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                if read_only:
                    cur.execute("PRAGMA query_only=ON")
                else:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()
        self.md, self.t = _schema(sa)
        self.missing: set[str] = set()  # tables an older schema read as it is does not have: read as empty
        if read_only:
            self._check_readable()
        else:
            self._migrate()

    def _fail(self, exc: BaseException) -> SpeechlabError:
        return SpeechlabError(f"results database {self.shown_url!r}: {type(exc).__name__}: {redact(exc)}")

    def _check_readable(self) -> None:
        sa = self.sa
        try:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table("schema_version"):
                    raise SpeechlabError(f"{self.shown_url} is not a pytest-speechlab results database "
                                         "(no schema_version table)")
                version = conn.execute(sa.select(self.t["schema_version"].c.version)).scalar()
        except SpeechlabError:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged file, unreachable server
            raise self._fail(exc) from None
        if version is None or version > SCHEMA_VERSION:
            raise SpeechlabError(f"results database {self.shown_url!r} has schema version {version}, which this "
                                 f"pytest-speechlab ({SCHEMA_VERSION}) cannot read: upgrade pytest-speechlab")
        if version < SCHEMA_VERSION:  # read as it is (never migrated here): without what it does not have
            with self.engine.connect() as conn:
                inspector = sa.inspect(conn)
                self.missing = {name for name in self.t if not inspector.has_table(name)}
                have = {name: {c["name"] for c in inspector.get_columns(name)}
                        for name in ("runs", "utterances") if name not in self.missing}
            for name, columns in have.items():
                self.t[name] = sa.Table(name, sa.MetaData(), *(c._copy() for c in self.t[name].columns if c.name in columns))

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._migration_lock():
            self._migrate_locked()

    def _migration_lock(self):
        """One process migrates at a time (PostgreSQL locks inside the transaction instead)."""
        db = self.sa.engine.make_url(self.url).database if self.url.startswith("sqlite") else None
        if not db or db == ":memory:":
            return contextlib.nullcontext()
        try:
            import fcntl
        except ImportError:  # Windows: SQLite's own locking has to do
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def locked():
            with open(f"{db}.lock", "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                yield

        return locked()

    def _migrate_locked(self) -> None:
        sa = self.sa
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":  # one migrator at a time
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(727431)"))
                _create(conn, sa, self.t["schema_version"])
                version = conn.execute(sa.select(self.t["schema_version"].c.version)).scalar()
                if version is None:
                    version = 0
                    conn.execute(self.t["schema_version"].insert().values(version=0))
                if version > SCHEMA_VERSION:
                    raise SpeechlabError(
                        f"results database {self.shown_url!r} has schema version {version}, newer than this "
                        f"pytest-speechlab understands ({SCHEMA_VERSION}): upgrade pytest-speechlab"
                    )
                for step in range(version, SCHEMA_VERSION):
                    MIGRATIONS[step](conn, sa, self.md, self.t)
                conn.execute(self.t["schema_version"].update().values(version=SCHEMA_VERSION))
        except SpeechlabError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc) from None

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(self.sa.select(self.t["schema_version"].c.version)).scalar()

    # -- writing -----------------------------------------------------------------------------

    def start_run(self, meta: dict) -> str:
        meta = storable(meta)
        run_id = meta.get("id") or str(uuid.uuid4())
        row = {"id": run_id, "started_at": meta.get("started_at") or now(), "status": "incomplete"}
        row.update({k: meta.get(k) for k in ("git_commit", "git_dirty", "git_commit_time", "host", "cpu", "python",
                                             "packages", "normalizer", "config", "finished_at",
                                             "imported_from")})
        if meta.get("status"):
            row["status"] = meta["status"]
        with self.engine.begin() as conn:
            conn.execute(self.t["runs"].insert().values(**row))
        return run_id

    def finish_run(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.t["runs"].update().where(self.t["runs"].c.id == run_id)
                         .values(status="complete", finished_at=now()))

    def record_model(self, run_id: str, info: dict, load_seconds: float | None) -> None:
        row = {"run_id": run_id, "name": info["name"], "backend": info.get("backend"),
               "backend_version": info.get("backend_version"), "weights": info.get("weights_path") or info.get("weights"),
               "weights_sha256": info.get("weights_sha256"), "params": info.get("params"),
               "info": _jsonable(info), "load_seconds": load_seconds}
        row = storable(row)
        with self.engine.begin() as conn:
            exists = conn.execute(self.sa.select(self.t["models"].c.name).where(
                (self.t["models"].c.run_id == run_id) & (self.t["models"].c.name == info["name"]))).first()
            if not exists:
                conn.execute(self.t["models"].insert().values(**row))

    def record_progress(self, run_id: str, model: str, dataset: str, total: int) -> None:
        """An evaluation starts: it will have ``total`` utterances (the viewer shows how far it is)."""
        t = self.t["progress"]
        with self.engine.begin() as conn:
            conn.execute(t.delete().where((t.c.run_id == run_id) & (t.c.model == model) & (t.c.dataset == dataset)))
            conn.execute(t.insert().values(**storable(dict(run_id=run_id, model=model, dataset=dataset,
                                                           total=int(total), started_at=now()))))

    def record_utterances(self, run_id: str, model: str, dataset: str, rows: Iterable[dict]) -> None:
        """One batch, one transaction. Should the database refuse the batch, each row is written
        alone, so one bad row never costs the good ones (RowsRejected then names the bad ones)."""
        rows = [storable({"run_id": run_id, "model": model, "dataset": dataset, **r}) for r in rows]
        if not rows:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(self.t["utterances"].insert(), rows)
            return
        except Exception:  # noqa: BLE001 - retried row by row below
            pass
        rejected = []
        for row in rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(self.t["utterances"].insert(), [row])
            except Exception as exc:  # noqa: BLE001
                rejected.append(f"{row['utterance_id'][:80]!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        if rejected:
            raise RowsRejected(f"{len(rejected)} of {len(rows)} utterance rows of {model} on {dataset} were refused "
                               f"by the database (the others were written): " + "; ".join(rejected[:5]))

    def record_aggregate(self, run_id: str, model: str, dataset: str, metrics: dict, environment: dict) -> None:
        """The evaluation's figures, and a row for each of its languages (``metrics["languages"]``)."""
        languages = [storable(dict(
            run_id=run_id, model=model, dataset=dataset, language=lang["language"], metric=lang["metric"],
            error_rate=lang["error_rate"], ci_low=(lang["ci"] or (None, None))[0], ci_high=(lang["ci"] or (None, None))[1],
            scored=lang["scored"], reference_units=lang["reference_units"], normalizer=lang["normalizer"],
            metrics=_jsonable(lang))) for lang in metrics.get("languages") or ()]
        with self.engine.begin() as conn:
            conn.execute(self.t["aggregates"].insert().values(**storable(dict(
                run_id=run_id, model=model, dataset=dataset, metrics=_jsonable(metrics), environment=_jsonable(environment)))))
            if languages:
                conn.execute(self.t["languages"].insert(), languages)

    def annotate_aggregate(self, run_id: str, model: str, dataset: str, key: str, value: Any) -> None:
        """Add ``key`` to a recorded aggregate's figures (a TTS evaluation's perceptual quality and
        audio checks, known only after its round trip was recorded)."""
        t = self.t["aggregates"]
        where = (t.c.run_id == run_id) & (t.c.model == model) & (t.c.dataset == dataset)
        with self.engine.begin() as conn:
            row = conn.execute(self.sa.select(t.c.metrics).where(where)).first()
            if row is not None:
                metrics = dict(row[0] or {})
                metrics[key] = storable(_jsonable(value))
                conn.execute(t.update().where(where).values(metrics=metrics))

    def record_grade(self, run_id: str, model: str, grade: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.t["grades"].insert().values(**storable(dict(run_id=run_id, model=model, grade=grade, reason=reason))))

    def record_outcomes(self, run_id: str, rows: list[dict]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.t["outcomes"].insert(), [storable({"run_id": run_id, **r}) for r in rows])

    def put_outputs(self, rows: list[dict], replace: bool = False) -> None:
        """Cache rows; a key already there is kept (two sessions computing one output agree on it),
        or replaced with ``replace`` (``--speechlab-cache refresh``)."""
        if not rows:
            return
        rows = [storable({**r, "created_at": now()}) for r in rows]
        table = self.t["outputs"]
        if self.engine.dialect.name in ("sqlite", "postgresql"):
            from importlib import import_module

            insert = import_module(f"sqlalchemy.dialects.{self.engine.dialect.name}").insert(table)
            statement = (insert.on_conflict_do_update(index_elements=["key"], set_={
                c: insert.excluded[c] for c in rows[0] if c != "key"}) if replace
                else insert.on_conflict_do_nothing(index_elements=["key"]))
            with self.engine.begin() as conn:
                conn.execute(statement, rows)
            return
        with self.engine.begin() as conn:  # other databases: one row at a time
            for row in rows:
                existing = conn.execute(self.sa.select(table.c.key).where(table.c.key == row["key"])).first()
                if existing and replace:
                    conn.execute(table.delete().where(table.c.key == row["key"]))
                if not existing or replace:
                    conn.execute(table.insert(), [row])

    # -- reading -----------------------------------------------------------------------------

    def outputs(self, keys: list[str]) -> dict[str, dict]:
        """Cached outputs by key (a database written before the cache existed has none). The JSON
        columns are decoded here, row by row: a damaged row is left out (a miss, computed again) and
        counted in ``unreadable_outputs``, never the reason the other rows are not read."""
        table, sa = self.t["outputs"], self.sa
        columns = [c if c.name not in ("transcript", "notes") else sa.cast(c, sa.Text).label(c.name)
                   for c in table.c]
        found: dict[str, dict] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            try:
                rows = self._query(sa.select(*columns).where(table.c.key.in_(chunk)))
            except SpeechlabError:
                if self.read_only:  # an older schema read as it is
                    return {}
                raise
            for row in rows:
                try:
                    row["transcript"] = json.loads(row["transcript"]) if row["transcript"] is not None else None
                    row["notes"] = json.loads(row["notes"]) if row["notes"] is not None else None
                except (TypeError, ValueError, RecursionError):
                    self.unreadable_outputs += 1
                    continue
                found[row["key"]] = row
        return found

    def _query(self, query) -> list[dict]:
        """Rows of a read; a damaged database or a lost server is a SpeechlabError, not a traceback."""
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(query)]
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc) from None

    def _rows(self, table: str, **where) -> list[dict]:
        if table in self.missing:
            return []
        t = self.t[table]
        query = self.sa.select(t)
        for key, value in where.items():
            query = query.where(t.c[key] == value)
        return self._query(query)

    def runs(self, limit: int | None = None) -> list[dict]:
        t = self.t["runs"]
        query = self.sa.select(t).order_by(t.c.started_at.desc(), t.c.id)
        if limit:
            query = query.limit(limit)
        return self._query(query)

    def resolve(self, ref: str) -> str:
        """A run id, a unique id prefix, a baseline name, or 'latest'."""
        if ref == "latest":
            runs = self.runs(limit=1)
            if not runs:
                raise SpeechlabError(f"no runs in {self.shown_url}")
            return runs[0]["id"]
        baseline = self._rows("baselines", name=ref)
        if baseline:
            return baseline[0]["run_id"]
        t = self.t["runs"]
        ids = [r["id"] for r in self._query(self.sa.select(t.c.id).where(t.c.id.startswith(ref, autoescape=True)))]
        if len(ids) == 1:
            return ids[0]
        if ids:
            raise SpeechlabError(f"run {ref!r}: ambiguous prefix in {self.shown_url} ({', '.join(i[:12] for i in ids[:5])})")
        raise SpeechlabError(f"run {ref!r}: no such run or baseline in {self.shown_url}. {self.known_names()} "
                             "Fix: `speechlab baseline set NAME RUN` names a recorded run; "
                             "`speechlab import FILE --baseline NAME` brings one from an export")

    def known_names(self) -> str:
        """The baselines and newest runs there are, for error messages."""
        baselines = sorted(b["name"] for b in self.baselines())
        runs = [f"{r['id'][:8]} ({r['started_at'][:19]}, {r['status']})" for r in self.runs(limit=5)]
        return (f"Baselines: {', '.join(baselines) or 'none'}. "
                f"Newest runs: {', '.join(runs) or 'none (the database is empty)'}.")

    def run(self, run_id: str) -> dict:
        rows = self._rows("runs", id=run_id)
        if not rows:
            raise SpeechlabError(f"no run {run_id!r} in {self.shown_url}")
        run = rows[0]
        run["models"] = self._rows("models", run_id=run_id)
        run["aggregates"] = self._rows("aggregates", run_id=run_id)
        run["languages"] = self._rows("languages", run_id=run_id)
        run["grades"] = self._rows("grades", run_id=run_id)
        run["outcomes"] = self._rows("outcomes", run_id=run_id)
        return run

    def progress(self, run_id: str) -> list[dict]:
        """Each evaluation of a run so far: planned utterances, written ones, and the word errors and
        reference words among them (a run in progress has no aggregate yet)."""
        u = self.t["utterances"]
        sa = self.sa
        errors = sa.func.coalesce(u.c.substitutions, 0) + sa.func.coalesce(u.c.deletions, 0) + sa.func.coalesce(u.c.insertions, 0)
        words = sa.func.coalesce(u.c.hits, 0) + sa.func.coalesce(u.c.substitutions, 0) + sa.func.coalesce(u.c.deletions, 0)
        written = {(r["model"], r["dataset"]): r for r in self._query(
            sa.select(u.c.model, u.c.dataset, sa.func.count().label("done"), sa.func.sum(errors).label("errors"),
                      sa.func.sum(words).label("words"), sa.func.sum(u.c.audio_seconds).label("audio_seconds"),
                      sa.func.sum(u.c.processing_seconds).label("processing_seconds"))
            .where(u.c.run_id == run_id).group_by(u.c.model, u.c.dataset))}
        planned = {(r["model"], r["dataset"]): r for r in self._rows("progress", run_id=run_id)}
        found = []
        for key in sorted(set(written) | set(planned)):
            w, p = written.get(key, {}), planned.get(key, {})
            found.append({"model": key[0], "dataset": key[1], "total": p.get("total"), "done": w.get("done") or 0,
                          "errors": w.get("errors") or 0, "words": w.get("words") or 0,
                          "audio_seconds": w.get("audio_seconds") or 0.0,
                          "processing_seconds": w.get("processing_seconds") or 0.0, "started_at": p.get("started_at")})
        return found

    def all_rows(self, table: str, *columns: str) -> list[dict]:
        """These columns of every row of one of a run's tables, for all runs at once (the viewer's
        listing: a few queries however many runs there are)."""
        if table in self.missing:
            return []
        t = self.t[table]
        return self._query(self.sa.select(*(t.c[c] for c in columns)).distinct())

    def identities(self) -> dict[tuple[str, str], dict]:
        """Every run's models' identities, by (run id, model name) (the viewer's trends)."""
        t = self.t["models"]
        rows = self._query(self.sa.select(t.c.run_id, t.c.name, t.c.info))  # no DISTINCT: PostgreSQL's json has no "="
        return {(r["run_id"], r["name"]): r["info"] if isinstance(r["info"], dict) else {} for r in rows}

    def history(self) -> list[dict]:
        """Every aggregate (its figures and where it ran) with its run's commit, commit time, start and
        status (the viewer's trends)."""
        a, r = self.t["aggregates"], self.t["runs"]
        columns = [r.c[name] for name in ("git_commit", "git_dirty", "git_commit_time", "started_at", "status")
                   if name in r.c]
        return self._query(self.sa.select(a.c.run_id, a.c.model, a.c.dataset, a.c.metrics, a.c.environment, *columns)
                           .join(r, r.c.id == a.c.run_id))

    def evaluations(self, run_id: str) -> set[tuple[str, str]]:
        """The (model, dataset) pairs a run has utterance results for."""
        t = self.t["utterances"]
        rows = self._query(self.sa.select(t.c.model, t.c.dataset).where(t.c.run_id == run_id).distinct())
        return {(r["model"], r["dataset"]) for r in rows}

    def utterances(self, run_id: str, model: str | None = None, dataset: str | None = None) -> list[dict]:
        where = {"run_id": run_id}
        if model:
            where["model"] = model
        if dataset:
            where["dataset"] = dataset
        return self._rows("utterances", **where)

    # -- baselines, export, import, prune ----------------------------------------------------

    def set_baseline(self, name: str, run_ref: str) -> str:
        run_id = self.resolve(run_ref)
        t = self.t["baselines"]
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.name == name))
            conn.execute(t.insert().values(name=name, run_id=run_id, set_at=now()))
        return run_id

    def baselines(self) -> list[dict]:
        return self._rows("baselines")

    # -- listening tests ------------------------------------------------------------------------

    def create_listening_test(self, name: str, kind: str, spec: dict) -> None:
        t = self.t["listening_tests"]
        with self.engine.begin() as conn:
            if conn.execute(self.sa.select(t.c.name).where(t.c.name == name)).first():
                raise SpeechlabError(f"a listening test named {name!r} exists already")
            conn.execute(t.insert().values(name=name, kind=kind, spec=storable(spec), created_at=now()))

    def listening_tests(self) -> list[dict]:
        return sorted(self._rows("listening_tests"), key=lambda r: r["created_at"] or "")

    def listening_test(self, name: str) -> dict:
        found = self._rows("listening_tests", name=name)
        if not found:
            raise SpeechlabError(f"no listening test named {name!r}")
        return found[0]

    def add_rating(self, test: str, rater: str, item: str, shown: list, score: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.t["ratings"].insert().values(
                id=str(uuid.uuid4()), test=test, rater=rater, item=item, shown=storable(shown),
                score=storable(score), created_at=now()))

    def ratings(self, test: str | None = None) -> list[dict]:
        return self._rows("ratings", **({"test": test} if test else {}))

    def export_run(self, run_id: str) -> dict:
        run = self.run(run_id)
        run["utterances"] = self.utterances(run_id)
        for key in _CHILDREN:
            for row in run[key]:
                row.pop("run_id", None)
        return {"format": EXPORT_FORMAT, "schema_version": SCHEMA_VERSION, "run": run}

    def import_run(self, data: object, source: str = "") -> str:
        where = source or "import"
        run, children = _checked_export(data, self.t, where)
        if self._rows("runs", id=run["id"]):
            raise SpeechlabError(f"run {run['id']} is already in {self.shown_url}")
        run["imported_from"] = where
        try:
            with self.engine.begin() as conn:
                conn.execute(self.t["runs"].insert().values(**run))
                for key, rows in children.items():
                    if rows:
                        conn.execute(self.t[key].insert(), [{**r, "run_id": run["id"]} for r in rows])
        except Exception as exc:  # noqa: BLE001 - nothing is written then (one transaction)
            raise SpeechlabError(f"{where}: the database refused the run ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]}); nothing was imported") from None
        return run["id"]

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` runs. Runs named as baselines or used by a listening
        test are always kept, and so is every run that may still be in progress: incomplete and started less than
        ``IN_PROGRESS_HOURS`` ago (a session killed half-way stays incomplete; it goes after that)."""
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise SpeechlabError(f"--keep {keep!r}: give the number of newest runs to keep (0 or more)")
        protected = {b["run_id"] for b in self.baselines()}
        for test in self.listening_tests():  # a listening test's systems link to their runs
            spec = test.get("spec") if isinstance(test.get("spec"), dict) else {}
            systems = spec.get("systems") if isinstance(spec.get("systems"), list) else []
            protected |= {s["run"] for s in systems if isinstance(s, dict) and isinstance(s.get("run"), str)}
        recent = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=IN_PROGRESS_HOURS)).isoformat()
        doomed = [r["id"] for r in self.runs()[keep:] if r["id"] not in protected
                  and not (r["status"] == "incomplete" and (r["started_at"] or "") >= recent)]
        if doomed:
            with self.engine.begin() as conn:
                for name in ("utterances", "languages", "aggregates", "grades", "outcomes", "models", "progress"):
                    conn.execute(self.t[name].delete().where(self.t[name].c.run_id.in_(doomed)))
                conn.execute(self.t["runs"].delete().where(self.t["runs"].c.id.in_(doomed)))
        return doomed


    # -- the inference cache (table outputs) ---------------------------------------------------

    def cache_summary(self) -> list[dict]:
        """Per model: cached outputs, their size in bytes (the stored transcripts), the oldest and
        newest, and how many distinct runs computed them."""
        t = self.t["outputs"]
        sa = self.sa
        size = sa.func.sum(sa.func.length(sa.cast(t.c.transcript, sa.Text)))
        query = (sa.select(t.c.model, sa.func.count().label("entries"), size.label("bytes"),
                           sa.func.min(t.c.created_at).label("oldest"), sa.func.max(t.c.created_at).label("newest"),
                           sa.func.count(sa.distinct(t.c.run_id)).label("runs"))
                 .group_by(t.c.model).order_by(t.c.model))
        return [{**r, "bytes": int(r["bytes"] or 0)} for r in self._query(query)]

    def clear_cache(self, model: str | None = None, older_than: str | None = None) -> int:
        """Delete cached outputs (of one model; computed before ``older_than``, an ISO time): how many."""
        t = self.t["outputs"]
        where = self.sa.true()
        if model is not None:
            where = where & (t.c.model == model)
        if older_than is not None:
            where = where & (t.c.created_at < older_than)
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(where)).rowcount or 0


_CHILDREN = ("models", "aggregates", "languages", "grades", "outcomes", "utterances")


def _checked_export(data: object, tables: dict, where: str) -> tuple[dict, dict]:
    """The run row and its children from an export, checked for shape and types; one clear error."""
    def bad(problem: str) -> SpeechlabError:
        return SpeechlabError(f"{where}: not a pytest-speechlab run export ({problem})")

    if not isinstance(data, dict) or data.get("format") not in (EXPORT_FORMAT, RESULTS_FORMAT):
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise bad(f"format {found!r}, expected {EXPORT_FORMAT!r} (speechlab export) or {RESULTS_FORMAT!r} "
                  "(--speechlab-json)")
    run = data.get("run")
    if run is None and data.get("format") == RESULTS_FORMAT:
        raise SpeechlabError(f"{where}: this run file holds no recorded run (its session had no results database: "
                             "--speechlab-no-db, or the database failed); run again with a database to import it")
    if not isinstance(run, dict):
        raise bad("'run' must be an object")
    run = dict(run)
    children = {key: run.pop(key, []) for key in _CHILDREN}
    columns = set(tables["runs"].c.keys())
    if set(run) - columns:
        raise bad(f"unknown run field(s) {sorted(set(run) - columns)[:5]}")
    rid = run.get("id")
    if not isinstance(rid, str) or not rid or len(rid) > 36:
        raise bad("run 'id' must be a string of 1-36 characters")
    for key in ("started_at", "status"):
        if not isinstance(run.get(key), str):
            raise bad(f"run {key!r} must be a string")
    for key, rows in children.items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise bad(f"{key!r} must be a list of objects")
        allowed = set(tables[key].c.keys()) - {"run_id"}
        for i, row in enumerate(rows):
            if set(row) - allowed - {"run_id"}:
                raise bad(f"{key}[{i}]: unknown field(s) {sorted(set(row) - allowed)[:5]}")
            for column in tables[key].primary_key.columns:
                if column.name != "run_id" and not isinstance(row.get(column.name), str):
                    raise bad(f"{key}[{i}]: {column.name!r} must be a string")
        children[key] = [storable({k: v for k, v in r.items() if k != "run_id"}) for r in rows]
    return storable(run), children


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_metadata(git: tuple, normalizer: str, config: dict) -> dict:
    """Where and with what a run happened: ``git`` (commit, dirty flag, commit time, as
    ``git_state`` gives them), host, CPU, versions."""
    from importlib.metadata import distributions

    commit, dirty, committed = git
    wanted = ("pytest", "pytest-speechlab", "jiwer", "whisper-normalizer", "zhconv", "faster-whisper", "ctranslate2",
              "pocketsphinx", "torch", "transformers", "numpy", "soxr", "soundfile")
    packages = {d.metadata["Name"]: d.version for d in distributions()
                if d.metadata["Name"] and (d.metadata["Name"].lower() in wanted or d.metadata["Name"].lower().startswith("speechlab-"))}
    here = machine()
    return {
        "git_commit": commit, "git_dirty": dirty, "git_commit_time": committed, "host": here["host"], "cpu": here["cpu"],
        "python": here["python"], "packages": packages, "normalizer": normalizer,
        "config": _jsonable(config),
    }
