"""`iclaw mcp list|add|remove|serve`: declare MCP servers, check them, serve iclaw's own tools.

Thin commands over `iclaw.mcp.config` (the declarations), `iclaw.mcp.hub` (connecting,
for `list --check`) and `iclaw.mcp.server` (serving). Errors are `IclawError`s, printed
by the `iclaw` entry point in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import anyio
import typer

from iclaw.errors import IclawError
from iclaw.mcp.config import (
    McpServerSpec,
    load_servers,
    remove_server,
    save_server,
    user_config_path,
    workspace_config_path,
)

__all__ = ["mcp_app"]

mcp_app = typer.Typer(
    help="MCP: tools from Model Context Protocol servers, and `iclaw mcp serve` for other clients.",
    no_args_is_help=True,
)

Workspace = Annotated[Path, typer.Option("--workspace", "-w", help="The workspace (its .iclaw/mcp.yaml is read too).")]
Project = Annotated[bool, typer.Option("--project", help="Edit the workspace's .iclaw/mcp.yaml instead of ~/.config/iclaw/config.yaml.")]


def _target(project: bool, workspace: Path) -> tuple[Path, str]:
    return (workspace_config_path(workspace), "servers") if project else (user_config_path(), "mcp_servers")


@mcp_app.command("list", epilog="Example: iclaw mcp list --check")
def list_command(
    workspace: Workspace = Path("."),
    check: Annotated[bool, typer.Option("--check", help="Start every server and list its tools.")] = False,
) -> None:
    """The declared servers (user config and workspace); --check connects to each."""
    from iclaw.tools.builtin import BUILTIN_TOOLS

    entries, problems = load_servers(workspace, reserved=BUILTIN_TOOLS)
    for problem in problems:
        typer.echo(f"problem: {problem}", err=True)
    if not entries:
        typer.echo("no MCP servers declared (add one: iclaw mcp add NAME -- COMMAND ARGS...)")
        return
    if not check:
        for entry in entries:
            typer.echo(f"{entry.name}  {entry.spec.transport}  {entry.spec.target()}  ({entry.source})")
        return
    from iclaw.mcp.hub import McpHub

    with McpHub(entries, workspace, on_notice=lambda line: None) as hub:
        typer.echo(hub_table(hub))


def hub_table(hub) -> str:
    """Servers, status and tools, as `/mcp` and `iclaw mcp list --check` show them."""
    from iclaw.mcp.tools import tool_flags

    lines = []
    for state in hub.states:
        spec = state.entry.spec
        lines.append(f"{state.name}  {state.status}  {spec.transport}  {spec.target()}  ({state.entry.source})")
        if state.error:
            lines.append(f"  error: {state.error}")
        for listed in state.listed if state.status == "running" else []:
            read_only, destructive = tool_flags(listed.annotations)
            flag = "read-only" if read_only else ("destructive" if destructive else "writes")
            lines.append(f"  {state.name}.{listed.name}  [{flag}]  {(listed.description or '').strip()[:70]}")
    return "\n".join(lines) or "no MCP servers declared"


@mcp_app.command(
    "add",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Examples: iclaw mcp add notes -- python notes_server.py · iclaw mcp add tracker --url http://127.0.0.1:9000/mcp",
)
def add_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Server name; its tools are called NAME.TOOL.")],
    url: Annotated[Optional[str], typer.Option("--url", help="Streamable-HTTP endpoint (instead of a command).")] = None,
    env: Annotated[Optional[list[str]], typer.Option("--env", metavar="KEY=VALUE", help="Environment for the command (repeatable).")] = None,
    project: Project = False,
    workspace: Workspace = Path("."),
) -> None:
    """Declare a server: a command after `--` (stdio) or --url (streamable HTTP)."""
    from pydantic import ValidationError

    from iclaw.tools.builtin import BUILTIN_TOOLS

    argv = list(ctx.args)
    if bool(argv) == bool(url):
        raise IclawError("give either a command after -- (stdio) or --url URL (streamable HTTP)")
    if name in BUILTIN_TOOLS:
        raise IclawError(f"server name {name!r} clashes with the built-in tool {name}; pick another name")
    pairs = [item.partition("=") for item in env or []]
    if any(not sep for _, sep, _ in pairs):
        raise IclawError("--env takes KEY=VALUE")
    try:
        spec = McpServerSpec(url=url) if url else McpServerSpec(command=argv[0], args=argv[1:], env={k: v for k, _, v in pairs})
    except ValidationError as exc:
        raise IclawError(f"server {name!r}: {exc.errors()[0]['msg']}") from exc
    path, key = _target(project, workspace)
    save_server(path, key, name, spec)
    typer.echo(f"added {name} ({spec.transport}: {spec.target()}) to {path}")


@mcp_app.command("remove", epilog="Example: iclaw mcp remove notes")
def remove_command(
    name: Annotated[str, typer.Argument(help="Server name.")],
    project: Project = False,
    workspace: Workspace = Path("."),
) -> None:
    """Remove a declared server."""
    path, key = _target(project, workspace)
    if not remove_server(path, key, name):
        raise IclawError(f"{path} declares no server {name!r} (iclaw mcp list shows what is declared)")
    typer.echo(f"removed {name} from {path}")


@mcp_app.command("serve", epilog="Example: iclaw mcp serve --workspace ./project --mode auto --http 8765")
def serve_command(
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="The directory the tools work in (their sandbox).")],
    mode: Annotated[str, typer.Option("--mode", help="read-only (the default: only the reading tools) or auto.")] = "read-only",
    http: Annotated[Optional[int], typer.Option("--http", metavar="PORT", help="Serve streamable HTTP on 127.0.0.1:PORT/mcp instead of stdio.")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="Profile whose sandbox settings apply (permissions.*).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", "-c", metavar="KEY=VALUE", help="Profile override, e.g. permissions.limits.memory_mb=1024.")] = None,
    tool_timeout: Annotated[float, typer.Option("--tool-timeout", help="Per-call timeout in seconds.")] = 60.0,
    unsafe_shell: Annotated[bool, typer.Option("--unsafe-shell", help="Run commands unconfined where the kernel has no Landlock.")] = False,
) -> None:
    """Offer the workspace tools (read_file ... run_python) to any MCP client, sandboxed as for the agent."""
    from iclaw.mcp.server import serve, serving_registry
    from iclaw.profile import load_profile

    if unsafe_shell:
        overrides = [*(overrides or []), "permissions.unsafe_shell=true"]
    chosen = load_profile(profile or "v2", list(overrides or []))
    registry = serving_registry(workspace, mode, policy=chosen.permissions.sandbox(), timeout_s=tool_timeout)
    anyio.run(serve, registry, tool_timeout, mode == "read-only", http)
