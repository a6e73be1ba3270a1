"""`builtin_registry`: the built-in tools, bound to one workspace and one set of permissions.

Built-ins: read_file, write_file, edit_file, list_dir, glob, grep, run_shell, run_python,
calculator, and http_get (only when hosts are allowed). `enabled` picks a subset (a task's
`tools:` list); naming an unknown tool is an error that lists the known ones. `policy`
is what commands may reach (network, limits, the unsafe opt-in; see `iclaw.tools.policy`).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from iclaw.errors import IclawError
from iclaw.tools.calculator import calculator_tool
from iclaw.tools.context import ToolContext
from iclaw.tools.files import file_tools
from iclaw.tools.permissions import Permissions
from iclaw.tools.policy import SandboxPolicy
from iclaw.tools.process import ProcessRunner
from iclaw.tools.registry import ToolRegistry
from iclaw.tools.search import search_tools
from iclaw.tools.shell import command_tools
from iclaw.tools.web import http_get_tool
from iclaw.tools.workspace import Workspace

__all__ = ["builtin_registry", "BUILTIN_TOOLS"]

BUILTIN_TOOLS = (
    "read_file",
    "write_file",
    "edit_file",
    "list_dir",
    "glob",
    "grep",
    "run_shell",
    "run_python",
    "calculator",
    "http_get",
)


def builtin_registry(
    workspace: Path,
    permissions: Permissions | None = None,
    enabled: list[str] | None = None,
    *,
    http_allow_hosts: list[str] | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
    command_timeout_s: float = 60.0,
    max_output_chars: int = 12_000,
    policy: SandboxPolicy | None = None,
    tmp_parent: Path | None = None,
    use_landlock: bool | None = None,
) -> ToolRegistry:
    unknown = [name for name in enabled or [] if name not in BUILTIN_TOOLS]
    if unknown:
        raise IclawError(f"unknown built-in tool(s) {', '.join(unknown)}; known: {', '.join(BUILTIN_TOOLS)}")
    permissions = permissions or Permissions()
    ws = Workspace(workspace)
    runner = ProcessRunner(
        ws.root, max_output_chars=max_output_chars, policy=policy, tmp_parent=tmp_parent, use_landlock=use_landlock
    )
    ctx = ToolContext(workspace=ws, permissions=permissions, runner=runner)
    tools = [*file_tools(ctx), *search_tools(ctx), *command_tools(ctx, command_timeout_s), calculator_tool()]
    wants_http = bool(http_allow_hosts) or (enabled is not None and "http_get" in enabled)
    if wants_http:
        tools.append(http_get_tool(permissions, list(http_allow_hosts or []), transport=http_transport))
    registry = ToolRegistry([t for t in tools if enabled is None or t.name in enabled])
    registry.sandbox = runner.sandbox
    registry.workspace = ws
    registry.runner = runner
    registry.permissions = permissions
    return registry
