"""`iclaw mcp serve`: iclaw's workspace tools for any MCP client, through the same sandbox.

The served tools are the built-ins of one workspace — read_file, write_file, edit_file,
list_dir, glob, grep, run_shell, run_python — built by `builtin_registry` exactly as for
the agent: paths confined to the workspace, commands under Landlock with the profile's
resource limits, output capped, every call under the tool timeout (the agent's
`ToolExecutor` runs it). `--mode read-only` (the default) refuses every write and command;
`auto` allows them inside the sandbox; nobody can approve a question here, so there is no
`ask`. A failed call is an MCP tool error (`isError`), never a dropped connection.

Transports: stdio (the default) or streamable HTTP on 127.0.0.1 (`--http PORT`, path `/mcp`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iclaw.errors import IclawError
from iclaw.executor import ToolExecutor
from iclaw.providers.turn import ToolCall
from iclaw.tools.builtin import builtin_registry
from iclaw.tools.permissions import Permissions
from iclaw.tools.policy import SandboxPolicy
from iclaw.tools.registry import ToolRegistry

__all__ = ["SERVED_TOOLS", "SERVE_MODES", "serving_registry", "build_server", "serve"]

SERVED_TOOLS = ("read_file", "write_file", "edit_file", "list_dir", "glob", "grep", "run_shell", "run_python")
SERVE_MODES = ("read-only", "auto")


def serving_registry(
    workspace: Path, mode: str = "read-only", *, policy: SandboxPolicy | None = None, timeout_s: float = 60.0,
    use_landlock: bool | None = None,
) -> ToolRegistry:
    if mode not in SERVE_MODES:
        raise IclawError(f"--mode {mode!r}: iclaw mcp serve runs read-only or auto (nobody can approve an ask here)")
    workspace = Path(workspace)
    if not workspace.is_dir():
        raise IclawError(f"--workspace {workspace}: no such directory")
    return builtin_registry(
        workspace, Permissions(mode=mode), enabled=list(SERVED_TOOLS), command_timeout_s=timeout_s,
        policy=policy, use_landlock=use_landlock,
    )


def build_server(registry: ToolRegistry, timeout_s: float = 60.0, *, read_only: bool = True, name: str = "iclaw") -> Any:
    """A low-level MCP `Server` whose tools are the registry's, each call run by a ToolExecutor.

    `read_only` (the registry's permission mode is read-only) lists only the reading tools."""
    import mcp.types as types
    from mcp.server import Server

    listed = [
        types.Tool(
            name=tool.name,
            description=tool.description,
            input_schema=tool.parameters(),
            annotations=types.ToolAnnotations(
                read_only_hint=tool.read_only,
                destructive_hint=not tool.read_only,
                open_world_hint=False,
            ),
        )
        for tool in registry
        if tool.read_only or not read_only
    ]
    names = {t.name for t in listed}

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: Any) -> Any:
        if params.name not in names:
            text, ok = f"unknown tool {params.name!r}; this server offers {', '.join(sorted(names))}", False
        else:
            executor = ToolExecutor(registry, parallel=False, timeout_s=timeout_s)
            [result] = await executor.run([ToolCall(id="mcp", name=params.name, arguments=dict(params.arguments or {}))])
            text, ok = result.content, result.ok
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=not ok)

    return Server(name, version="1", instructions=f"Tools of one iclaw workspace ({registry.sandbox}).",
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def serve(registry: ToolRegistry, timeout_s: float, read_only: bool, http_port: int | None = None) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    server = build_server(registry, timeout_s, read_only=read_only)
    if http_port is None:
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning")).serve()
