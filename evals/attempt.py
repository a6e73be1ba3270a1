"""One attempt: a task, one model version, one agent version, one epoch.

Order of events (the checks' baselines are taken before the agent can touch anything,
and the hidden files appear only after it has finished):

1. a fresh sandbox: workspace files placed, setup command run;
2. each check's `prepare` (snapshots for `unchanged` / `outside_untouched`);
3. the tool registry: the task's built-ins, its mock tools, its MCP servers (started in the
   sandbox), its injected faults;
4. the agent runs under the task's limits, writing its trajectory JSONL as it goes;
5. hidden files copied in; every check evaluated; the sandbox deleted.

The agent runs on its own event loop in a worker thread (`run_isolated`), so a crash or a
hang stays inside the attempt. Outcomes: `passed` / `failed` by the checks; `error` when
the agent crashed, reported an internal error, or hung past its wall time plus a grace
period (checks still run and are kept, but the attempt fails).

`HarnessError` (retried by the runner, recorded as `harness_error`, left out of every
score) is raised only for what cannot be the agent's doing: steps 1-3, before the agent's
first step, and the model transport — an unreachable model, or one that refuses the
credentials (HTTP 401/403). Everything after the agent started is scored: hidden files
that cannot be placed (the agent put a file where their directory goes) and a check that
cannot run are failed checks carrying the reason, so no agent behaviour can take an
attempt out of the score.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import anyio
from iclaw.agent import Agent, Limits
from iclaw.errors import IclawError, ModelError, ModelUnreachable
from iclaw.mcp.hub import start_task_servers
from iclaw.providers import ChatModel
from iclaw.tools import Permissions, ToolRegistry, add_mock_tools, builtin_registry, inject_faults

from evals.checks import CheckContext, CheckResult
from evals.errors import HarnessError
from evals.sandbox import Sandbox
from evals.store import ResultRecord
from evals.task import Task
from evals.versions import CREDENTIAL_STATUSES, AgentVersion, ModelVersion

__all__ = ["Attempt", "run_attempt", "run_isolated", "AgentHung", "HANG_GRACE_S"]

T = TypeVar("T")

HANG_GRACE_S = 30.0
"""Extra time past a task's wall_time_s before the harness declares the agent hung."""


class AgentHung(Exception):
    """The agent did not return within its wall time plus the grace period."""


async def run_isolated(make: Callable[[], Awaitable[T]], deadline_s: float, name: str = "agent") -> T:
    """Await `make()` on a fresh event loop in a worker thread; AgentHung after `deadline_s`.

    NOTE: cancellation in asyncio is cooperative — an agent stuck in a blocking call, or
    one that shields or swallows cancellation, would hold an in-loop timeout hostage and
    with it the whole suite. On its own loop it can only block itself: at the deadline
    (`anyio.fail_after`) the harness asks that loop to cancel the run and stops waiting
    (`abandon_on_cancel`); a thread blocked in a call that never returns is left behind.
    """
    inner: dict[str, Any] = {}

    async def main() -> T:
        inner["loop"], inner["task"] = asyncio.get_running_loop(), asyncio.current_task()
        return await make()

    def in_thread() -> T:
        threading.current_thread().name = name  # for thread dumps of a hung agent
        return asyncio.run(main())

    try:
        with anyio.fail_after(deadline_s):
            return await anyio.to_thread.run_sync(in_thread, abandon_on_cancel=True)
    except TimeoutError:
        raise AgentHung() from None
    finally:
        # Whatever ended the wait (the deadline, or the harness itself cancelled by Ctrl-C or
        # SIGTERM), the agent's loop is told to stop: anyio's worker thread is not a daemon,
        # so a run left going would hold the process at exit.
        if "loop" in inner:
            try:
                inner["loop"].call_soon_threadsafe(inner["task"].cancel)
            except RuntimeError:
                pass  # its loop has finished


@dataclass
class Attempt:
    run_id: str
    task: Task
    model: ModelVersion
    agent: AgentVersion
    epoch: int
    trajectory_path: Path


class _TransportWatch:
    """The attempt's chat model, noting whether its endpoint refused the credentials.

    The agent turns a model error into its own `error` status; a 401/403 is not the
    agent's doing, so the harness must see it to record a harness error instead.
    """

    def __init__(self, model: ChatModel) -> None:
        self._model = model
        self.refused: ModelError | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    async def complete(self, messages: list[dict], tools: list[dict], **kwargs: Any) -> Any:
        try:
            return await self._model.complete(messages, tools, **kwargs)
        except ModelError as exc:
            if exc.status in CREDENTIAL_STATUSES:
                self.refused = exc
            raise


def _registry(task: Task, attempt: Attempt, workspace: Path, tmp_parent: Path | None) -> ToolRegistry:
    prof = attempt.agent.profile.permissions
    # Nobody can answer an approval prompt during an eval: `ask` runs as `auto`; a
    # read-only profile and the profile's deny rules are kept.
    mode = "auto" if prof.mode == "ask" else prof.mode
    permissions = Permissions(mode=mode, allow=list(prof.allow), deny=list(prof.deny))
    registry = builtin_registry(
        workspace, permissions, enabled=task.tools, command_timeout_s=task.limits.tool_timeout_s,
        policy=replace(prof.sandbox(), network=task.limits.network), tmp_parent=tmp_parent,
    )
    add_mock_tools(registry, task.mock_tools)
    if task.mcp_servers:
        start_task_servers(registry, permissions, task.mcp_servers, f"task {task.id}")
    inject_faults(registry, task.faults)
    return registry


async def run_attempt(
    attempt: Attempt, env: dict[str, str], hang_grace_s: float = HANG_GRACE_S, scratch: Path | None = None
) -> ResultRecord:
    """Run one attempt to a `ResultRecord`; raises `HarnessError` for harness failures.

    `scratch` is the folder (see `evals.scratch`) the sandbox and the tools' temp dirs go in."""
    task = attempt.task
    sandbox = await Sandbox.create(task, env, parent=scratch)
    registry = None
    try:
        ctx = CheckContext(sandbox.root, env=env)
        baselines = [await check.prepare(ctx) for check in task.checks]
        try:
            registry = _registry(task, attempt, sandbox.workspace, scratch)
        except IclawError as exc:
            raise HarnessError(f"task {task.id!r}: cannot build its tools: {exc}", retryable=False) from exc
        chat_model = _TransportWatch(attempt.model.chat_model(task))
        limits = Limits(
            max_steps=task.limits.max_steps,
            wall_time_s=task.limits.wall_time_s,
            max_tokens=task.limits.max_tokens,
            tool_timeout_s=task.limits.tool_timeout_s,
        )
        attempt.trajectory_path.parent.mkdir(parents=True, exist_ok=True)
        attempt.trajectory_path.unlink(missing_ok=True)  # a retried attempt starts a fresh transcript
        agent = Agent(chat_model, registry, attempt.agent.profile, limits, trajectory_path=attempt.trajectory_path)

        record = ResultRecord(
            run_id=attempt.run_id, task_id=task.id, epoch=attempt.epoch, status="failed",
            trajectory_path=str(attempt.trajectory_path),
        )
        started = time.monotonic()
        deadline = task.limits.wall_time_s + hang_grace_s
        try:
            result = await run_isolated(lambda: agent.run(task.instruction), deadline, name=f"agent-{task.id}")
        except ModelUnreachable as exc:
            raise HarnessError(str(exc), model_down=True) from exc
        except AgentHung:
            record.error = f"hung: the agent gave no result within {deadline:g}s (wall_time_s + {hang_grace_s:g}s grace)"
        except Exception as exc:  # the agent crashed: record it and let the suite go on
            record.error = f"agent crashed: {type(exc).__name__}: {exc}"
        else:
            record.agent_status = result.status
            record.answer = result.answer
            record.add(result)  # a new record's counters are zero
            if result.status == "error":
                record.error = result.error or "the agent reported an internal error"
            elif result.error:
                record.error = result.error
        record.wall_s = time.monotonic() - started

        if chat_model.refused is not None:
            raise HarnessError(
                f"model {attempt.model.name!r} refused the credentials: {chat_model.refused}",
                retryable=False, model_down=True,
            ) from chat_model.refused

        checks = await _evaluate(task, ctx, baselines, sandbox, record.answer)
        record.checks = [c.to_dict() for c in checks]
        crashed = record.agent_status in (None, "error")
        record.status = "error" if crashed else ("passed" if all(c.passed for c in checks) else "failed")
        return record
    finally:
        if registry is not None and registry.mcp is not None:
            registry.mcp.close()  # the task's MCP servers stop before the sandbox goes
        sandbox.remove()


async def _evaluate(task: Task, ctx: CheckContext, baselines: list[Any], sandbox: Sandbox, answer: str | None) -> list[CheckResult]:
    """Place the hidden files and run every check; whatever goes wrong is a failed check, never an exception."""
    checks: list[CheckResult] = []
    try:
        sandbox.reveal_hidden(task)
    except Exception as exc:  # noqa: BLE001 - e.g. a file where a hidden directory goes
        checks.append(CheckResult("hidden", False, f"the hidden files could not be placed in the workspace: {exc}"))
    ctx.answer = answer
    for check, baseline in zip(task.checks, baselines):
        try:
            checks.append(await check.evaluate(ctx, baseline))
        except Exception as exc:  # noqa: BLE001 - what the agent left behind broke the check: it fails
            checks.append(CheckResult(check.type, False, f"the check could not run: {type(exc).__name__}: {exc}"))
    return checks
