"""The one exception tree of the `iclaw` package.

Every error a user can cause (an unreachable endpoint, a malformed profile, an unknown
session id, ...) is an `IclawError` whose message says what to fix; the CLI prints it in
one line and exits non-zero. Foreign errors (httpx, OSError, pydantic, yaml) are
translated once at the boundary with `raise X(...) from exc`.

A failed *tool* is not an exception for the agent: tools raise `ToolError` (or any
exception) and the registry turns it into a `ToolResult` the model reads. The agent's own
flow-control exceptions (`Submitted`, `GaveUp`, ...) live in `iclaw.flow`, not here.
"""

__all__ = [
    "IclawError",
    "ModelUnreachable",
    "ModelError",
    "ContextOverflow",
    "ProfileError",
    "ToolError",
    "SandboxViolation",
    "Declined",
    "SessionError",
]


class IclawError(Exception):
    """Base class: something the user can fix; the message says how."""


class ModelUnreachable(IclawError):
    """The model endpoint cannot be reached (connection refused, DNS, timeouts)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the model endpoint {url}: {reason} "
            "(is the server running? check --base-url or the endpoint in ~/.config/iclaw/config.yaml)"
        )
        self.url = url


class ModelError(IclawError):
    """The endpoint answered, but with an error that retrying will not fix (4xx, bad body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ContextOverflow(ModelError):
    """The prompt is longer than the model's context window: compact, do not resend."""


class ProfileError(IclawError):
    """An agent profile or the endpoint config file is missing or invalid (file and field named)."""


class ToolError(IclawError):
    """A tool could not do what it was asked; `kind` tells the failure policy how to react.

    kind: "transient" (retry may help), "invalid_arguments" (the model must fix the call),
    "denied" (sandbox or permissions said no), "declined" (the user said no when asked),
    "permanent" (anything else).
    """

    def __init__(self, message: str, kind: str = "permanent") -> None:
        super().__init__(message)
        self.kind = kind


class SandboxViolation(ToolError):
    """A path or command would leave the workspace, or the permission mode forbids it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="denied")


class Declined(ToolError):
    """The user answered no to an approval question: their decision, not a failure of the tool."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="declined")


class SessionError(IclawError):
    """A saved session cannot be found or read."""
