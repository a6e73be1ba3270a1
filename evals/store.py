"""The results database: SQLite (stdlib `sqlite3`), default `runs/evals.db`.

Tables (the DESIGN.md columns, plus a few the harness needs):

- `runs`: one row per (model version, agent version) of an invocation — `id, started_at,
  suite, model, agent, git_sha, config_json`, plus `batch` (the invocation the run
  belongs to; a models × agents matrix is one batch of several runs) and `finished_at`.
- `results`: one row per (run, task, epoch) — `success, checks_json, steps, tool_calls,
  tokens_in, tokens_out, wall_s, error, trajectory_path`, plus `status` (passed | failed |
  error | harness_error), `agent_status`, `answer` and `attempts` (harness retries).

Rows are written as results arrive, so an interrupted run can be resumed and a report can
be read while a run is still going. This module knows SQL, not how results are produced.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iclaw.counters import RunCounters

from evals.errors import RunNotFound, StoreError

__all__ = ["Store", "RunRecord", "ResultRecord", "STATUSES", "now_iso"]

STATUSES = ("passed", "failed", "error", "harness_error")
"""`error`: the agent crashed or hung (a failure). `harness_error`: not the agent's fault; not scored."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    suite       TEXT NOT NULL,
    model       TEXT NOT NULL,
    agent       TEXT NOT NULL,
    git_sha     TEXT,
    config_json TEXT NOT NULL,
    batch       TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_batch ON runs(batch);
CREATE TABLE IF NOT EXISTS results (
    run_id          TEXT NOT NULL REFERENCES runs(id),
    task_id         TEXT NOT NULL,
    epoch           INTEGER NOT NULL,
    success         INTEGER,
    checks_json     TEXT NOT NULL,
    steps           INTEGER NOT NULL DEFAULT 0,
    tool_calls      INTEGER NOT NULL DEFAULT 0,
    tokens_in       INTEGER NOT NULL DEFAULT 0,
    tokens_out      INTEGER NOT NULL DEFAULT 0,
    wall_s          REAL NOT NULL DEFAULT 0,
    error           TEXT,
    trajectory_path TEXT,
    status          TEXT NOT NULL,
    agent_status    TEXT,
    answer          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 1,
    finished_at     TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, epoch)
);
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    id: str
    batch: str
    suite: str
    model: str
    agent: str
    config: dict[str, Any]
    git_sha: str | None = None
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None


@dataclass
class ResultRecord(RunCounters):
    """One attempt's outcome; its steps, tool calls and tokens are the `RunCounters` fields."""

    run_id: str
    task_id: str
    epoch: int
    status: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None
    trajectory_path: str | None = None
    agent_status: str | None = None
    answer: str | None = None
    attempts: int = 1
    finished_at: str = field(default_factory=now_iso)

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status

    @property
    def success(self) -> bool | None:
        """True/False for scored results; None for a harness error (not scored)."""
        return None if self.status == "harness_error" else self.status == "passed"


class Store:
    """One SQLite database file; use as a context manager or call close()."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)  # ":memory:" keeps a throwaway database (used by --validate)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.row_factory = sqlite3.Row
            # WAL lets `iclaw eval report` read while a run is still writing.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open results database {path}: {exc}") from exc

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # -- writing ---------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO runs (id, started_at, suite, model, agent, git_sha, config_json, batch, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.id, run.started_at, run.suite, run.model, run.agent, run.git_sha,
                 json.dumps(run.config, sort_keys=True), run.batch, run.finished_at),
            )

    def finish_run(self, run_id: str) -> None:
        with self._db:
            self._db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (now_iso(), run_id))

    def record(self, result: ResultRecord) -> None:
        """Insert or replace the result of one (run, task, epoch)."""
        row = asdict(result)
        row["checks_json"] = json.dumps(row.pop("checks"))
        row["success"] = None if result.success is None else int(result.success)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._db:
            self._db.execute(f"INSERT OR REPLACE INTO results ({cols}) VALUES ({marks})", tuple(row.values()))

    # -- reading ---------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in {self.path}; `iclaw eval report latest` shows the newest")
        return _run_from_row(row)

    def runs(self, batch: str | None = None) -> list[RunRecord]:
        if batch is None:
            rows = self._db.execute("SELECT * FROM runs ORDER BY rowid").fetchall()
        else:
            rows = self._db.execute("SELECT * FROM runs WHERE batch = ? ORDER BY rowid", (batch,)).fetchall()
        return [_run_from_row(r) for r in rows]

    def resolve(self, ref: str) -> list[RunRecord]:
        """Runs named by `ref`: a run id, a batch id, `latest` (the newest batch) or a unique prefix."""
        if ref == "latest":
            row = self._db.execute("SELECT batch FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
            if row is None:
                raise RunNotFound(f"no runs yet in {self.path}; start one with `iclaw eval --suite tasks/`")
            return self.runs(row["batch"])
        exact = self._db.execute("SELECT * FROM runs WHERE id = ?", (ref,)).fetchone()
        if exact is not None:
            return [_run_from_row(exact)]
        batch = self.runs(ref)
        if batch:
            return batch
        like = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._db.execute("SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY rowid", (like,)).fetchall()
        batches = {r["batch"] for r in rows}
        if len(batches) == 1:
            return [_run_from_row(r) for r in rows]
        if not rows:
            raise RunNotFound(f"no run or batch {ref!r} in {self.path}")
        raise RunNotFound(f"{ref!r} is ambiguous ({len(rows)} runs in {len(batches)} batches); give more of the id")

    def results(self, run_id: str) -> list[ResultRecord]:
        rows = self._db.execute(
            "SELECT * FROM results WHERE run_id = ? ORDER BY task_id, epoch", (run_id,)
        ).fetchall()
        return [_result_from_row(r) for r in rows]


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], batch=row["batch"], suite=row["suite"], model=row["model"], agent=row["agent"],
        config=json.loads(row["config_json"]), git_sha=row["git_sha"], started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


_RESULT_FIELDS = [f.name for f in fields(ResultRecord) if f.name != "checks"]


def _result_from_row(row: sqlite3.Row) -> ResultRecord:
    return ResultRecord(checks=json.loads(row["checks_json"]), **{name: row[name] for name in _RESULT_FIELDS})
