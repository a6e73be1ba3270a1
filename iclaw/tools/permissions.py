"""`Permissions`: what the agent may do in its workspace, decided by the harness, not the model.

Modes: `read-only` (reads only), `ask` (writes, commands and network need the user's
approval, shown with a diff or the command), `auto` (workspace-write without asking).
Rules in the profile refine the mode: `deny` always wins; `allow` skips the question in
`ask` mode. A rule is `tool` or `tool:pattern`, the pattern matched (fnmatch) against the
call's subject — the workspace-relative path for file tools, the command for
`run_shell`, the URL for `http_get`.

Knows nothing about how tools do their work; tools call `check` before acting.
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal

from iclaw.errors import SandboxViolation

__all__ = ["Permissions", "Approval", "Mode", "MODES"]

Mode = Literal["read-only", "ask", "auto"]
MODES: tuple[str, ...] = ("read-only", "ask", "auto")
Action = Literal["read", "write", "exec", "net"]


@dataclass(frozen=True)
class Approval:
    """One question to the user: may `tool` do `action` on `subject`? `preview` is a diff or command."""

    tool: str
    action: str
    subject: str
    preview: str = ""


Approver = Callable[[Approval], "bool | Awaitable[bool]"]


@dataclass
class Permissions:
    mode: Mode = "auto"
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    approver: Approver | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SandboxViolation(f"unknown permission mode {self.mode!r}; use one of {', '.join(MODES)}")

    async def check(self, tool: str, action: Action, subject: str, preview: str = "") -> None:
        """Return if allowed; raise `SandboxViolation` with the reason otherwise."""
        rule = _matching(self.deny, tool, subject)
        if rule:
            raise SandboxViolation(f"{tool} on {subject!r} is denied by the rule {rule!r} in the profile")
        if action == "read":
            return
        if self.mode == "read-only":
            raise SandboxViolation(
                f"{tool} would {_verb(action)} {subject!r}, but the permission mode is read-only; "
                "only reading tools are available"
            )
        if _matching(self.allow, tool, subject) or self.mode == "auto":
            return
        if self.approver is None:
            raise SandboxViolation(
                f"{tool} on {subject!r} needs approval (mode ask) but nobody can approve here; "
                "use --mode auto or add an allow rule"
            )
        answer = self.approver(Approval(tool, action, subject, preview))
        if inspect.isawaitable(answer):
            answer = await answer
        if not answer:
            raise SandboxViolation(f"the user declined {tool} on {subject!r}")


def _matching(rules: list[str], tool: str, subject: str) -> str | None:
    for rule in rules:
        name, _, pattern = rule.partition(":")
        if fnmatch.fnmatchcase(tool, name) and (not pattern or fnmatch.fnmatchcase(subject, pattern)):
            return rule
    return None


def _verb(action: str) -> str:
    return {"write": "write", "exec": "run", "net": "fetch"}.get(action, action)
