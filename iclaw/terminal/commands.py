"""Slash commands of the interactive terminal: `/help /model /tools /compact /memory /clear /save /load /profile /mcp /exit`.

Each command is a small method on `SlashCommands`, which acts on the running terminal
through the `TerminalHost` protocol (its agent, console and session) — `TerminalApp`
implements it, so this module never imports the app. Knows nothing about key handling.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

from iclaw.agent import Agent
from iclaw.errors import IclawError
from iclaw.session import SavedSession, list_sessions, load_session

__all__ = ["SlashCommands", "TerminalHost", "COMMANDS", "loaded_notes"]

COMMANDS: dict[str, str] = {
    "/help": "show this help",
    "/model": "show the model, or switch: /model NAME",
    "/tools": "list the tools the agent may call",
    "/compact": "compact the memory now: /compact [focus]",
    "/memory": "show pinned items, memory blocks and context usage",
    "/clear": "start a new conversation (new session)",
    "/save": "show where the session is saved, or copy it: /save PATH",
    "/load": "resume a saved session: /load ID|PATH (no argument: list sessions)",
    "/profile": "show the agent profile, or switch: /profile NAME",
    "/mcp": "list the MCP servers, their status and tools",
    "/exit": "leave iclaw (Ctrl-D works too)",
}


def loaded_notes(agent) -> str:
    """The banner's line on what the session loaded besides the profile: AGENTS.md, MCP servers."""
    notes = []
    instructions = getattr(agent, "project_instructions", None)
    if instructions is not None:
        cut = ", cut to fit" if instructions.truncated else ""
        notes.append(f"AGENTS.md loaded ({instructions.tokens} tokens{cut}) from {instructions.path}")
    hub = getattr(agent.registry, "mcp", None)
    if hub is not None and hub.states:
        running = hub.running()
        tools = sum(len(s.listed) for s in running)
        notes.append(f"MCP: {len(running)}/{len(hub.states)} server(s) up, {tools} tool(s) (/mcp)")
    return " · ".join(notes)


class TerminalHost(Protocol):
    """What the slash commands need from the running terminal."""

    agent: Agent
    console: Console
    session_id: str

    @property
    def session_file(self) -> Path: ...

    @property
    def model_name(self) -> str: ...

    async def check_model(self, name: str | None = None) -> None: ...

    def new_session(self) -> None: ...

    def resume(self, session: SavedSession) -> None: ...

    def switch_profile(self, name: str) -> None: ...

    def show_meter(self) -> None: ...


class SlashCommands:
    def __init__(self, app: TerminalHost) -> None:
        self.app = app

    @property
    def console(self):
        return self.app.console

    async def dispatch(self, line: str) -> bool:
        """Run one command line; return False when the terminal should exit."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name not in COMMANDS:
            self.console.print(Text(f"unknown command {name}; /help lists the commands", style="red"))
            return True
        if name == "/exit":
            return False
        try:
            await getattr(self, "_" + name[1:])(arg)
        except IclawError as exc:
            self.console.print(Text(f"error: {exc}", style="red"))
        return True

    async def _help(self, arg: str) -> None:
        table = Table(show_header=False, box=None)
        for name, text in COMMANDS.items():
            table.add_row(f"[bold]{name}[/]", text)
        self.console.print(table)
        self.console.print(Text("Enter sends; Esc then Enter adds a line; Ctrl-C stops a running turn.", style="dim"))

    async def _model(self, arg: str) -> None:
        model = self.app.agent.model
        if arg:
            if not hasattr(model, "check_served"):
                raise IclawError("this model cannot be switched by name")
            await self.app.check_model(arg)  # an unserved name is refused with the names served; the old model stays
        where = getattr(model, "base_url", "in-process")
        self.console.print(f"model [bold]{self.app.model_name}[/] at {where}")

    async def _tools(self, arg: str) -> None:
        table = Table("tool", "flags", "description")
        for tool in self.app.agent.registry:
            flags = ", ".join(f for f, on in (("read-only", tool.read_only), ("parallel", tool.parallel_safe)) if on)
            table.add_row(tool.name, flags, tool.description)
        self.console.print(table)
        self.console.print(Text(f"sandbox: {self.app.agent.registry.sandbox}", style="dim"))

    async def _mcp(self, arg: str) -> None:
        from iclaw.mcp.commands import hub_table

        hub = getattr(self.app.agent.registry, "mcp", None)
        if hub is None or not hub.states:
            self.console.print("no MCP servers declared (iclaw mcp add NAME -- COMMAND, or .iclaw/mcp.yaml)")
        else:
            self.console.print(Text(hub_table(hub)))
        for problem in getattr(hub, "problems", []):
            self.console.print(Text(f"problem: {problem}", style="yellow"))

    async def _compact(self, arg: str) -> None:
        events = await self.app.agent.compact(arg or None)
        if not events:
            self.console.print("nothing to compact yet")
        for event in events:
            self.console.print(f"{event['stage']}: {event['before']:,} -> {event['after']:,} tokens")
        self.app.show_meter()

    async def _memory(self, arg: str) -> None:
        memory = self.app.agent.memory
        pinned = memory.pins.render()
        self.console.print("[bold]Pinned[/]\n" + (pinned or "(nothing pinned)"))
        for block in memory.blocks:
            self.console.print(f"[bold]Block[/] level {block.level}, turns {block.first}-{block.last} ({block.source})\n{block.text}")
        self.console.print(f"{len(memory.units)} recent exchange(s) verbatim, {len(memory.blocks)} summary block(s)")
        self.app.show_meter()

    async def _clear(self, arg: str) -> None:
        self.app.new_session()
        self.console.print(f"new conversation (session {self.app.session_id})")

    async def _save(self, arg: str) -> None:
        source = self.app.session_file
        self.app.agent.trajectory.save()
        if not arg:
            self.console.print(f"session {self.app.session_id} is saved after every step in {source}")
            return
        if not source.exists():
            raise IclawError("nothing to save yet: send a message first")
        target = Path(arg).expanduser()
        shutil.copyfile(source, target)
        self.console.print(f"saved a copy to {target}")

    async def _load(self, arg: str) -> None:
        if not arg:
            table = Table("id", "first message")
            for session_id, _, first in list_sessions()[:20]:
                table.add_row(session_id, first)
            self.console.print(table)
            return
        session = load_session(arg)
        self.app.resume(session)
        self.console.print(f"resumed session {self.app.session_id} ({len(session.transcript)} messages)")
        self.app.show_meter()

    async def _profile(self, arg: str) -> None:
        if arg:
            self.app.switch_profile(arg)
        profile = self.app.agent.profile
        self.console.print(f"profile [bold]{profile.name}[/]: {profile.description}")
