"""The failure policy: what the agent does after tool calls fail.

Per failed call, by kind (see `iclaw.tools.tool`):
- transient (timeouts, EAGAIN, connection errors, 5xx): the executor already retried the
  same call with backoff; if it still fails it counts as a permanent failure;
- invalid_arguments: the model gets the validation error with the schema and fixes the
  call — only a repeat of the same invalid call escalates;
- permanent / denied: **replan** — the agent injects a message summarising what failed
  and asks for a new plan, which is pinned in memory;
- declined (the user said no when asked): the user's decision, not a failure — the model
  is told so (with the user's reason) and neither a replan nor the failure budget follows.
When replans or the failure budget run out the run **gives up** with an honest message
listing everything that was tried. With `failure.policy: false` (v1) errors go back
verbatim and nothing else happens.

Knows nothing about the model or the loop: it sees calls and results, and decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from iclaw.profile import FailureConfig
from iclaw.prompts import REPLAN_PROMPT
from iclaw.providers.turn import ToolCall
from iclaw.tools.tool import ToolResult

__all__ = ["FailurePolicy", "Decision"]


@dataclass
class Decision:
    action: str  # "continue" | "replan" | "give_up"
    message: str = ""


@dataclass
class _Tried:
    step: int
    call: str
    ok: bool
    kind: str | None
    detail: str


@dataclass
class FailurePolicy:
    config: FailureConfig
    tried: list[_Tried] = field(default_factory=list)
    failures: int = 0
    replans: int = 0
    _failed_calls: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.config.policy

    def observation(self, result: ToolResult) -> str:
        """What the model reads for one result."""
        if result.ok:
            return result.content
        if result.error_kind == "declined":
            return (f"declined: {result.content}\nThis is the user's decision, not an error. Do not call it "
                    "again the same way; go on without it, or answer and say what you would need.")
        if not self.active:
            return f"error: {result.content}"
        if result.error_kind == "invalid_arguments":
            return f"error (invalid arguments): {result.content}\nFix the arguments and call the tool again."
        if result.error_kind == "denied":
            return f"refused: {result.content}\nDo not repeat this call; find another way."
        if result.error_kind in ("transient", "timeout"):
            return f"error ({result.error_kind}, failed {result.attempts} time(s) with retries): {result.content}"
        return f"error: {result.content}"

    def decide(self, step: int, outcomes: list[tuple[ToolCall, ToolResult]]) -> Decision:
        """Record a step's results; say whether to continue, replan or give up."""
        escalate: list[str] = []
        for call, result in outcomes:
            signature = f"{call.name}({_args(call)})"
            detail = result.content.splitlines()[0][:200] if result.content else ""
            self.tried.append(_Tried(step, signature, result.ok, result.error_kind, detail))
            if result.ok or result.error_kind == "declined":
                continue
            self.failures += 1
            repeats = self._failed_calls.get(signature, 0) + 1
            self._failed_calls[signature] = repeats
            if result.error_kind != "invalid_arguments" or repeats > 1:
                escalate.append(f"- {signature}: {result.error_kind or 'error'}: {detail}")
        if not self.active:
            return Decision("continue")
        if self.config.give_up and self.failures >= self.config.max_failures:
            return Decision("give_up", self.give_up_message(f"{self.failures} tool calls failed"))
        if not escalate:
            return Decision("continue")
        if self.config.replan and self.replans < self.config.max_replans:
            self.replans += 1
            return Decision("replan", REPLAN_PROMPT.format(failures="\n".join(escalate)))
        if self.config.give_up:
            reason = "the replan budget is used up" if self.config.replan else "a tool failed permanently"
            return Decision("give_up", self.give_up_message(reason))
        return Decision("continue")

    def give_up_message(self, reason: str, model_reason: str | None = None) -> str:
        lines = [f"I could not complete the task ({reason})."]
        if model_reason:
            lines.append(f"Reason given: {model_reason}")
        if self.tried:
            lines.append("What I tried:")
            for t in self.tried[-20:]:
                outcome = "ok" if t.ok else f"failed ({t.kind}): {t.detail}"
                lines.append(f"- step {t.step}: {t.call} -> {outcome}")
            if len(self.tried) > 20:
                lines.append(f"- ... and {len(self.tried) - 20} earlier call(s)")
        else:
            lines.append("No tool call was made.")
        return "\n".join(lines)


def _args(call: ToolCall) -> str:
    if call.parse_error:
        return call.raw_arguments[:80]
    text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(call.arguments.items()))
    return text if len(text) <= 120 else text[:117] + "..."
