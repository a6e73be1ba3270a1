"""`Permissions`: what the agent may do in its workspace, decided by the harness, not the model.

Modes: `read-only` (reads only), `ask` (writes, commands and network need the user's
approval, shown with a diff or the command), `auto` (workspace-write without asking).
Rules in the profile refine the mode: `deny` always wins; `allow` skips the question in
`ask` mode. A rule is `tool` or `tool:pattern`, the pattern matched (fnmatch) against the
call's subject — the workspace-relative path for file tools, the command for
`run_shell`, the URL for `http_get`.

The approver answers `True`/`False` or a `Verdict` (no, with a reason for the model). A
no raises `Declined`: the user's decision, reported to the model as such, not a tool
failure. The time spent waiting for the answer is the user's, not the tool's: it is
added to the running call's `UserWait`, which takes it out of the call's duration and
pushes back its timeout.

Knows nothing about how tools do their work; tools call `check` before acting.
"""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterator, Literal

import anyio

from iclaw.errors import Declined, SandboxViolation

__all__ = ["Permissions", "Approval", "Verdict", "UserWait", "user_wait", "Mode", "MODES"]

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


@dataclass(frozen=True)
class Verdict:
    """The user's answer: allow or not, and (for a no) what to tell the model."""

    allow: bool
    reason: str = ""


Approver = Callable[[Approval], "bool | Verdict | Awaitable[bool | Verdict]"]


@dataclass
class UserWait:
    """Seconds one tool call spent waiting for the user, and the timeouts to push back by as much."""

    seconds: float = 0.0
    scopes: list[anyio.CancelScope] = field(default_factory=list)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """While the user thinks: no timeout runs; afterwards each deadline moves back by the wait."""
        started = time.perf_counter()
        saved = [(scope, scope.deadline) for scope in self.scopes]
        for scope, _ in saved:
            scope.deadline = math.inf
        try:
            yield
        finally:
            waited = time.perf_counter() - started
            self.seconds += waited
            for scope, deadline in saved:
                scope.deadline = deadline + waited


_USER_WAIT: ContextVar[UserWait | None] = ContextVar("iclaw_user_wait", default=None)


@contextlib.contextmanager
def user_wait() -> Iterator[UserWait]:
    """The running call's `UserWait` (a new one when none is running); approvals inside add to it."""
    current = _USER_WAIT.get()
    if current is not None:
        yield current
        return
    wait = UserWait()
    token = _USER_WAIT.set(wait)
    try:
        yield wait
    finally:
        _USER_WAIT.reset(token)


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
        with (_USER_WAIT.get() or UserWait()).paused():
            answer = self.approver(Approval(tool, action, subject, preview))
            if inspect.isawaitable(answer):
                answer = await answer
        verdict = answer if isinstance(answer, Verdict) else Verdict(bool(answer))
        if not verdict.allow:
            because = f"; they said: {verdict.reason}" if verdict.reason else ""
            raise Declined(f"the user declined {tool} on {subject!r}{because}")


def _matching(rules: list[str], tool: str, subject: str) -> str | None:
    for rule in rules:
        name, _, pattern = rule.partition(":")
        if fnmatch.fnmatchcase(tool, name) and (not pattern or fnmatch.fnmatchcase(subject, pattern)):
            return rule
    return None


def _verb(action: str) -> str:
    return {"write": "write", "exec": "run", "net": "fetch"}.get(action, action)
