"""`Agent`: the ReAct loop — ask the model, run the tools it calls, repeat until an answer.

Each step: compact memory if needed, send the prompt, then handle the reply in four
small moves — `_parse` (calls and text), `_settle` (give up, pin a plan, or submit the
answer), `_act` (run the calls), `_observe` (record results, let the failure policy
replan or give up). Native tool calls
are used when the profile says so; otherwise (or when a reply carries none) the text
parser reads `<tool_call>` blocks and `Action:` lines. The run ends by a flow-control
exception (`Submitted`, `LimitsExceeded`, `FormatError`, `GaveUp`) that becomes the
`RunResult` status. Tool failures go through the failure policy; a context-overflow
error from the server triggers a forced compaction, never a resend of the same prompt.
The trajectory is saved after every step.

The agent is given its model, tools and profile; it never builds them (the CLI and the
eval harness do). `run(task)` starts a fresh conversation; `turn(text)` continues one
(the interactive terminal).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import anyio

from iclaw.counters import RunCounters
from iclaw.errors import ContextOverflow, IclawError, ModelUnreachable
from iclaw.executor import ToolExecutor
from iclaw.failure import FailurePolicy
from iclaw.flow import FormatError, GaveUp, LimitsExceeded, RunEnded, Submitted
from iclaw.memory import Memory
from iclaw.profile import AgentProfile
from iclaw.prompts import (
    CONTINUE_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    FORMAT_ERROR_PROMPT,
    GIVE_UP_PREFIX,
    TEXT_TOOLS_HEADER,
)
from iclaw.providers.text_calls import parse_text_tool_calls
from iclaw.providers.turn import AssistantTurn, ChatModel, ToolCall
from iclaw.summarizer import ModelSummarizer
from iclaw.text_protocol import to_text_protocol
from iclaw.tokens import TokenCounter, load_counter
from iclaw.tools.registry import ToolRegistry
from iclaw.tools.tool import ToolResult
from iclaw.trajectory import Trajectory

__all__ = ["Agent", "Limits", "RunResult", "STATUSES"]

STATUSES = ("submitted", "limits_exceeded", "gave_up", "format_error", "error")
_PATH_TOOLS = ("read_file", "write_file", "edit_file")
_MAX_OVERFLOWS = 3
_UNRECORDED = ("text", "model_tokens")  # streamed deltas and counts are not worth a trajectory line each


@dataclass
class Limits:
    max_steps: int = 30
    wall_time_s: float = 600.0
    max_tokens: int | None = None  # tokens in + out over one run
    tool_timeout_s: float = 60.0


@dataclass
class RunResult(RunCounters):
    """How a run ended; its steps, tool calls and tokens are the `RunCounters` fields."""

    status: str
    answer: str | None
    wall_s: float = 0.0
    error: str | None = None
    messages: list[dict] = field(default_factory=list)
    compactions: int = 0
    peak_prompt_tokens: int = 0
    trajectory_path: str | None = None

    def summary(self) -> dict:
        """Everything but the messages, for `--json` output."""
        return {k: v for k, v in self.__dict__.items() if k != "messages"}


class Agent:
    def __init__(
        self,
        model: ChatModel,
        registry: ToolRegistry,
        profile: AgentProfile,
        limits: Limits | None = None,
        trajectory_path: Path | None = None,
        system_prompt: str | None = None,
        *,
        on_event: Callable[[dict], None] | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        self.model = model
        self.registry = registry
        self.profile = profile
        self.limits = limits or Limits()
        self.on_event = on_event
        self.counter = counter or load_counter(profile.memory.tokenizer)
        self.trajectory_path = Path(trajectory_path) if trajectory_path else None
        base_prompt = system_prompt or profile.system_prompt or DEFAULT_SYSTEM_PROMPT
        if not profile.loop.native_tools and len(registry):
            tools_text = "\n".join(json.dumps(s["function"], ensure_ascii=False) for s in registry.schemas())
            base_prompt += "\n\n" + TEXT_TOOLS_HEADER.format(tools=tools_text)
        self.summarizer = ModelSummarizer(model)
        self.memory = Memory(profile.memory, self.counter, base_prompt, self.summarizer, self._on_memory_event)
        self.transcript: list[dict] = []
        self.trajectory = self._new_trajectory()

    # ---- public API ------------------------------------------------------------------

    async def run(self, task: str) -> RunResult:
        """Start a fresh conversation with `task` and run it to the end."""
        self.reset()
        return await self.turn(task)

    async def turn(self, text: str) -> RunResult:
        """Add a user message to the conversation and run until the model answers or a limit hits."""
        state = _TurnState(
            started=time.perf_counter(),
            summary_tokens_at_start=(self.summarizer.tokens_in, self.summarizer.tokens_out),
        )
        self.memory.begin_task(text)
        self._record({"role": "user", "content": text})
        try:
            with anyio.move_on_after(self.limits.wall_time_s) as scope:
                await self._loop(state)
            if scope.cancelled_caught:
                self._repair("stopped: the wall-time limit was reached")
                raise LimitsExceeded(f"wall-time limit of {self.limits.wall_time_s:g}s reached before an answer")
        except RunEnded as end:
            return self._finish(state, end.status, end.message if isinstance(end, Submitted) else None, end.message)
        except ModelUnreachable:
            self._finish(state, "error", None, "model unreachable")
            raise
        except IclawError as exc:
            return self._finish(state, "error", None, str(exc))
        raise AssertionError("the loop only ends by an exception")  # pragma: no cover

    def reset(self) -> None:
        """Forget the conversation (memory, transcript, trajectory)."""
        self.memory.clear()
        self.transcript = []
        self.trajectory = self._new_trajectory()

    def resume(self, events: list[dict], memory_state: dict) -> None:
        """Continue a saved conversation: its memory, transcript and trajectory events."""
        self.memory.restore(memory_state)
        self.transcript = [e["message"] for e in events if e.get("type") == "message"]
        self.trajectory = Trajectory(self.trajectory_path)
        self.trajectory.events = list(events)

    def tool_schemas(self) -> list[dict]:
        return self.registry.schemas() if self.profile.loop.native_tools else []

    def context_usage(self) -> tuple[int, int]:
        """(prompt tokens now, budget) — the terminal's context meter."""
        return self.memory.count(self.tool_schemas() or None), self.memory.budget

    async def compact(self, focus: str | None = None) -> list[dict]:
        """Compact the memory now (the `/compact` command)."""
        events = await self.memory.compact(self.tool_schemas() or None, focus=focus, force=True)
        self.trajectory.save()
        return events

    def repair_after_cancel(self) -> None:
        """After a cancelled turn: answer dangling tool calls so the conversation stays valid."""
        self._repair("cancelled by the user before it finished")
        self._emit("cancelled")
        self.trajectory.snapshot(self.memory.snapshot())
        self.trajectory.save()

    # ---- the loop --------------------------------------------------------------------

    async def _loop(self, state: "_TurnState") -> None:
        policy = FailurePolicy(self.profile.failure)
        tools = self.tool_schemas()
        executor = ToolExecutor(
            self.registry,
            parallel=self.profile.tools.parallel,
            max_concurrency=self.profile.tools.max_concurrency,
            timeout_s=self.limits.tool_timeout_s,
            max_retries=self.profile.failure.max_retries if policy.active else 0,
            retry_backoff_s=self.profile.failure.retry_backoff_s,
            on_event=self._emit_raw,
        )
        while True:
            self._check_limits(state)
            await self.memory.fit(tools or None)
            prompt = self.memory.messages()
            used = self.memory.count(tools or None)
            state.peak = max(state.peak, used)
            state.steps += 1
            self._emit("step_start", step=state.steps, prompt_tokens=used, budget=self.memory.budget)
            started = time.perf_counter()
            try:
                turn = await self._complete(prompt, tools)
            except ContextOverflow as exc:
                state.overflows += 1
                self._emit("context_overflow", error=str(exc))
                if state.overflows >= _MAX_OVERFLOWS:
                    raise LimitsExceeded(f"the server kept rejecting the prompt as too long: {exc}") from exc
                await self.memory.compact(tools or None, force=True)
                continue
            state.overflows = 0
            state.tokens_in += turn.tokens_in
            state.tokens_out += turn.tokens_out
            self._emit("step", step=state.steps, model_s=round(time.perf_counter() - started, 4),
                       tokens_in=turn.tokens_in, tokens_out=turn.tokens_out, prompt_tokens=used)
            await self._handle(turn, state, policy, executor)
            self._checkpoint()

    async def _complete(self, prompt: list[dict], tools: list[dict]) -> AssistantTurn:
        if not self.profile.loop.native_tools:
            prompt = to_text_protocol(prompt)
        if getattr(self.model, "streams", False):
            on_text = (lambda delta: self._emit_raw({"type": "text", "delta": delta})) if self.on_event else None
            return await self.model.complete(prompt, tools, on_text=on_text, on_event=self._emit_raw)
        return await self.model.complete(prompt, tools)

    async def _handle(self, turn: AssistantTurn, state: "_TurnState", policy: FailurePolicy, executor: ToolExecutor) -> None:
        """One reply: parse it, settle what its text decides (give up, plan, answer), run its calls, observe."""
        parsed = self._parse(turn, state)
        if parsed is None:
            return
        calls, content = parsed
        if not self._settle(calls, content, state, policy):
            return
        results = await self._act(calls, state, executor)
        self._observe(calls, results, state, policy)

    def _parse(self, turn: AssistantTurn, state: "_TurnState") -> tuple[list[ToolCall], str | None] | None:
        """The reply's calls and text, recorded; None for a reply that could not be parsed (the model is told why)."""
        calls, content, problems = self._read_calls(turn)
        if problems and not calls:
            state.format_errors += 1
            self._record(AssistantTurn(content=turn.content).to_message())
            if state.format_errors >= self.profile.loop.max_format_errors:
                raise FormatError(f"{state.format_errors} consecutive replies could not be parsed; last problem: {problems[0]}")
            self._record({"role": "user", "content": FORMAT_ERROR_PROMPT.format(problem="; ".join(problems))})
            return None
        state.format_errors = 0
        if self.profile.loop.one_call_per_turn:
            calls = calls[:1]
        self._record(AssistantTurn(content=content, tool_calls=calls).to_message())
        return calls, content

    def _settle(self, calls: list[ToolCall], content: str | None, state: "_TurnState", policy: FailurePolicy) -> bool:
        """Act on the reply's text: give up or submit (both end the run), pin a plan; True when the calls run now."""
        text = (content or "").strip()
        if policy.active and self.profile.failure.give_up and text.upper().startswith(GIVE_UP_PREFIX):
            raise GaveUp(policy.give_up_message("the model decided to give up", text[len(GIVE_UP_PREFIX):].strip()))
        if state.awaiting_plan:
            # The first reply after a replan request is the plan (if it wrote one).
            state.awaiting_plan = False
            if text:
                self.memory.pin("plan", text)
                self._emit("plan_pinned", plan=text)
                if not calls:
                    self._record({"role": "user", "content": CONTINUE_PROMPT})
                    return False
        if not calls:
            raise Submitted(content or "")
        return True

    async def _act(self, calls: list[ToolCall], state: "_TurnState", executor: ToolExecutor) -> list[ToolResult]:
        """Run the calls (the executor decides what overlaps) and note the files they touched."""
        state.tool_calls += len(calls)
        results = await executor.run(calls)
        self.memory.note_paths([c.arguments["path"] for c in calls if c.name in _PATH_TOOLS and isinstance(c.arguments.get("path"), str)])
        return results

    def _observe(self, calls: list[ToolCall], results: list[ToolResult], state: "_TurnState", policy: FailurePolicy) -> None:
        """Record what the model reads for each result; the failure policy may ask for a new plan or give up."""
        for call, result in zip(calls, results):
            self._record({"role": "tool", "tool_call_id": call.id, "content": policy.observation(result)})
        decision = policy.decide(state.steps, list(zip(calls, results)))
        if decision.action == "replan":
            state.awaiting_plan = True
            self._emit("replan", message=decision.message)
            self._record({"role": "user", "content": decision.message})
        elif decision.action == "give_up":
            raise GaveUp(decision.message)

    def _read_calls(self, turn: AssistantTurn) -> tuple[list[ToolCall], str | None, list[str]]:
        if turn.tool_calls or not self.profile.loop.text_fallback or not turn.content:
            return turn.tool_calls, turn.content, []
        schemas = {t.name: t.parameters() for t in self.registry}
        parsed = parse_text_tool_calls(turn.content, schemas)
        return parsed.calls, parsed.content if parsed.calls else turn.content, parsed.problems

    def _check_limits(self, state: "_TurnState") -> None:
        if state.steps >= self.limits.max_steps:
            raise LimitsExceeded(f"step limit of {self.limits.max_steps} reached before an answer")
        if self.limits.max_tokens is not None and state.tokens_in + state.tokens_out >= self.limits.max_tokens:
            raise LimitsExceeded(f"token limit of {self.limits.max_tokens} reached before an answer")

    # ---- recording -------------------------------------------------------------------

    def _repair(self, note: str) -> None:
        for message in self.memory.repair(note):
            self.transcript.append(message)
            self.trajectory.add("message", message=message)

    def _new_trajectory(self) -> Trajectory:
        meta = {
            "model": getattr(self.model, "name", type(self.model).__name__),
            "profile": self.profile.model_dump(),
            "limits": self.limits.__dict__,
            "tools": self.registry.names(),
            "sandbox": getattr(self.registry, "sandbox", "none"),
            "tokenizer": self.counter.name,
        }
        return Trajectory(self.trajectory_path, meta)

    def _record(self, message: dict) -> None:
        self.transcript.append(message)
        self.memory.add(message)
        self.trajectory.add("message", message=message)
        if self.on_event is not None:
            self.on_event({"type": "message", "message": message})

    def _emit(self, type: str, **data) -> None:
        self._emit_raw({"type": type, **data})

    def _emit_raw(self, event: dict) -> None:
        if event["type"] not in _UNRECORDED:
            data = {k: v for k, v in event.items() if k != "type"}
            self.trajectory.add(event["type"], **data)
        if self.on_event is not None:
            self.on_event(event)

    def _on_memory_event(self, event: dict) -> None:
        self._emit_raw(event)

    def _checkpoint(self) -> None:
        self.trajectory.snapshot(self.memory.snapshot())
        self.trajectory.save()

    def _finish(self, state: "_TurnState", status: str, answer: str | None, message: str) -> RunResult:
        state.tokens_in += self.summarizer.tokens_in - state.summary_tokens_at_start[0]
        state.tokens_out += self.summarizer.tokens_out - state.summary_tokens_at_start[1]
        result = RunResult(
            status=status,
            answer=answer,
            steps=state.steps,
            tool_calls=state.tool_calls,
            tokens_in=state.tokens_in,
            tokens_out=state.tokens_out,
            wall_s=round(time.perf_counter() - state.started, 4),
            error=None if status == "submitted" else message,
            messages=list(self.transcript),
            compactions=sum(1 for e in self.trajectory.events if e["type"] == "compaction"),
            peak_prompt_tokens=state.peak,
            trajectory_path=str(self.trajectory_path) if self.trajectory_path else None,
        )
        self._emit("end", **result.summary())
        self._checkpoint()
        return result


@dataclass
class _TurnState(RunCounters):
    started: float
    summary_tokens_at_start: tuple[int, int] = (0, 0)
    peak: int = 0
    format_errors: int = 0
    overflows: int = 0
    awaiting_plan: bool = False
