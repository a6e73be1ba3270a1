"""The eval matrix: models × agents × tasks × epochs, concurrently, stored as it goes.

One invocation is a *batch*; each (model, agent) pair is one *run* in the store. Model
versions are brought up one after another (a checkpoint's server runs only while its
attempts do); within a model every (agent, task, epoch) attempt is scheduled on a pool of
`jobs` workers. Each result is written to the store the moment it is known, so `--resume`
can skip what is done and re-try what was a harness error.

Harness errors are retried with tenacity (`retries` times, with backoff); an unreachable model is
marked down after its retries so its remaining attempts are recorded at once instead of
each waiting for timeouts. This module knows the store and `run_attempt`; the CLI builds
the versions and prints.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from evals.attempt import HANG_GRACE_S, Attempt, run_attempt
from evals.errors import HarnessError
from evals.scratch import Scratch
from evals.shell import harness_env
from evals.store import ResultRecord, RunRecord, Store
from evals.task import Suite
from evals.versions import AgentVersion, ModelVersion

__all__ = ["RunOptions", "Runner", "new_batch_id", "git_sha"]

ProgressHook = Callable[[ResultRecord], None]


@dataclass
class RunOptions:
    epochs: int = 1
    jobs: int = 1
    retries: int = 2  # extra tries of an attempt that hit a harness error
    retry_backoff_s: float = 1.0
    hang_grace_s: float = HANG_GRACE_S
    task_filter: list[str] = field(default_factory=list)


def new_batch_id() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def git_sha(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            # "-dirty" marks results produced from uncommitted changes to tracked files.
            ["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


class Runner:
    """Runs a suite for a set of model and agent versions into one store."""

    def __init__(
        self,
        store: Store,
        out_dir: Path,
        options: RunOptions | None = None,
        on_result: ProgressHook | None = None,
    ) -> None:
        self.store = store
        self.out_dir = Path(out_dir).resolve()  # trajectory paths in the store stay valid from any cwd
        self.options = options or RunOptions()
        self.on_result = on_result
        self.env = harness_env()
        self._scratch: Scratch | None = None

    def plan(
        self, suite: Suite, models: list[ModelVersion], agents: list[AgentVersion], batch: str | None = None
    ) -> list[RunRecord]:
        """Create (and store) one run per (model, agent) of a new batch."""
        batch = batch or new_batch_id()
        sha = git_sha(suite.root)
        runs = []
        for model in models:
            for agent in agents:
                config = {
                    "suite": str(suite.root),
                    "tasks": [t.id for t in suite.tasks],
                    "task_digests": {t.id: t.digest for t in suite.tasks},
                    "task_filter": self.options.task_filter,
                    "model_spec": model.spec,
                    "temperature": model.temperature,
                    "agent_spec": agent.spec,
                    "agent_profile": agent.profile.model_dump(mode="json"),
                    "epochs": self.options.epochs,
                    "jobs": self.options.jobs,
                }
                run = RunRecord(
                    id=f"{batch}-{_slug(model.name)}-{_slug(agent.name)}", batch=batch, suite=str(suite.root),
                    model=model.name, agent=agent.name, config=config, git_sha=sha,
                )
                self.store.create_run(run)
                runs.append(run)
        return runs

    async def execute(
        self, suite: Suite, models: list[ModelVersion], agents: list[AgentVersion], runs: list[RunRecord]
    ) -> None:
        """Run every attempt of `runs` that has no scored result yet.

        Sandboxes live in a scratch folder of this call; creating it removes the ones that
        killed runs left behind (`evals.scratch`)."""
        self._scratch = Scratch.create()
        try:
            await self._execute(suite, models, agents, runs)
        finally:
            self._scratch.remove()

    async def _execute(
        self, suite: Suite, models: list[ModelVersion], agents: list[AgentVersion], runs: list[RunRecord]
    ) -> None:
        by_key = {(r.model, r.agent): r for r in runs}
        for model in models:
            todo: list[Attempt] = []
            for agent in agents:
                run = by_key.get((model.name, agent.name))
                if run is None:  # resuming a single run of a bigger batch
                    continue
                done = {(r.task_id, r.epoch) for r in self.store.results(run.id) if r.status != "harness_error"}
                traj_dir = self.out_dir / "evals" / run.id
                for task in suite.tasks:
                    for epoch in range(1, self.options.epochs + 1):
                        if (task.id, epoch) not in done:
                            path = traj_dir / f"{task.id}.e{epoch}.jsonl"
                            todo.append(Attempt(run.id, task, model, agent, epoch, path))
            if todo:
                await self._run_model(model, todo, self.out_dir / "evals" / runs[0].batch)
        for run in runs:
            self.store.finish_run(run.id)

    async def _run_model(self, model: ModelVersion, todo: list[Attempt], log_dir: Path) -> None:
        try:
            await model.start(log_dir)
        except HarnessError as exc:
            await model.stop()
            for attempt in todo:
                self._record(_harness_result(attempt, f"model {model.name!r} unavailable: {exc}", 1))
            return
        down: list[str] = []  # set once the model is known to be unreachable
        queue: asyncio.Queue[Attempt] = asyncio.Queue()
        for attempt in todo:
            queue.put_nowait(attempt)

        async def worker() -> None:
            while not queue.empty():
                attempt = queue.get_nowait()
                self._record(await self._attempt_with_retries(attempt, down))

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, self.options.jobs))))
        finally:
            await model.stop()

    async def _attempt_with_retries(self, attempt: Attempt, down: list[str]) -> ResultRecord:
        """A retryable harness error is tried again (`retries` times, backoff doubling from
        `retry_backoff_s`); once any attempt has found the model down, the rest are skipped."""
        tries = 0

        async def once() -> ResultRecord:
            nonlocal tries
            if down:
                return _harness_result(attempt, f"skipped: {down[0]}", tries)
            tries += 1
            return await run_attempt(attempt, self.env, self.options.hang_grace_s, self._scratch and self._scratch.root)

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, HarnessError) and exc.retryable),
            stop=stop_after_attempt(self.options.retries + 1),
            wait=wait_exponential(multiplier=self.options.retry_backoff_s),
            reraise=True,
        )
        try:
            record = await retrying(once)
        except HarnessError as exc:
            if exc.model_down:
                down.append(f"model {attempt.model.name!r} unreachable: {exc}")
            return _harness_result(attempt, str(exc), tries)
        except Exception as exc:  # a bug in the harness itself: never the agent's failure
            return _harness_result(attempt, f"harness failure: {type(exc).__name__}: {exc}", tries)
        record.attempts = max(1, tries)
        return record

    def _record(self, record: ResultRecord) -> None:
        self.store.record(record)
        if self.on_result is not None:
            self.on_result(record)


def _harness_result(attempt: Attempt, message: str, tries: int) -> ResultRecord:
    return ResultRecord(
        run_id=attempt.run_id, task_id=attempt.task.id, epoch=attempt.epoch, status="harness_error",
        error=message, attempts=max(1, tries), trajectory_path=str(attempt.trajectory_path),
    )
