"""`Tool` and `ToolResult`: what a tool is, and what calling one produces.

A tool is a function plus a pydantic argument model (which becomes the JSON schema the
model sees), a description and two flags: `read_only` (it changes nothing) and
`parallel_safe` (it may run alongside other calls of the same turn). `resource` names
what a call touches (e.g. a file path) so the executor serialises conflicting calls.

This module also classifies failures into the kinds the failure policy understands.
It knows nothing about the registry, the sandbox or the agent.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httpx
from pydantic import BaseModel

__all__ = ["Tool", "ToolResult", "ERROR_KINDS", "classify_exception", "classify_message", "compact_schema"]

# transient: retrying the same call may work; invalid_arguments: the model must change the call;
# denied: sandbox/permissions refused; declined: the user said no; timeout: the per-call limit
# hit; permanent: anything else.
ERROR_KINDS = ("transient", "invalid_arguments", "denied", "declined", "timeout", "permanent")

_TRANSIENT_ERRNOS = {
    errno.EAGAIN,
    errno.EWOULDBLOCK,
    errno.EINTR,
    errno.EBUSY,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EIO,
}
_TRANSIENT_TEXT = re.compile(
    r"\b(EAGAIN|EWOULDBLOCK|EINTR|EBUSY|EIO|ETIMEDOUT|ECONNRESET|ECONNREFUSED|HTTP 5\d\d|5\d\d server error)\b"
    r"|temporar|timed? ?out|try again|unavailable|connection (?:reset|refused|aborted)|rate.?limit|overloaded",
    re.IGNORECASE,
)


@dataclass
class ToolResult:
    ok: bool
    content: str
    error_kind: str | None = None
    attempts: int = 1
    duration_s: float = 0.0


ToolFunction = Callable[[Any], "str | Awaitable[str]"]


@dataclass
class Tool:
    name: str
    description: str
    fn: ToolFunction
    args_model: type[BaseModel]
    read_only: bool = True
    parallel_safe: bool = True
    resource: Callable[[Any], str | None] | None = None
    parameters_schema: dict | None = field(default=None, repr=False)

    def parameters(self) -> dict:
        """JSON schema of the arguments, compacted: every token of it is in every prompt."""
        if self.parameters_schema is not None:
            return self.parameters_schema
        return compact_schema(self.args_model.model_json_schema())

    def schema(self) -> dict:
        """The OpenAI `tools` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters()},
        }


_DROPPED_KEYS = {"additionalProperties", "default", "minimum", "maximum", "exclusiveMinimum"}


def compact_schema(node: Any) -> Any:
    """Keep names, types, `required` and descriptions; drop titles, `additionalProperties`,
    defaults, numeric bounds and the `null` branch of optional fields (a field outside
    `required` may be left out). The pydantic model still validates every call strictly,
    and its error message for a rejected call names the broken bound."""
    if isinstance(node, list):
        return [compact_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "title" and isinstance(value, str)):
            continue
        if key == "anyOf" and isinstance(value, list) and {"type": "null"} in value and len(value) == 2:
            out.update(compact_schema(next(v for v in value if v != {"type": "null"})))
            continue
        if key == "properties" and isinstance(value, dict):  # field names, never schema keywords
            out[key] = {name: compact_schema(spec) for name, spec in value.items()}
        else:
            out[key] = compact_schema(value)
    return out


def classify_message(message: str) -> str:
    """Kind of a failure known only by its text (injected faults, remote errors)."""
    return "transient" if _TRANSIENT_TEXT.search(message) else "permanent"


def classify_exception(exc: BaseException) -> str:
    """Kind of an exception a tool raised without saying (a crash, an OSError, an httpx error)."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind in ERROR_KINDS:
        return kind
    if isinstance(exc, (TimeoutError, ConnectionError, BlockingIOError, InterruptedError)):
        return "transient"
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return "transient"
    if isinstance(exc, httpx.TransportError):
        return "transient"
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500:
        return "transient"
    return classify_message(str(exc))
