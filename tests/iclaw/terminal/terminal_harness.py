"""`Harness`: a TerminalApp on prompt-toolkit's pipe input, its output captured in a string."""

from __future__ import annotations

import io

import anyio
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from iclaw.agent import Agent, Limits
from iclaw.profile import load_profile
from iclaw.terminal.app import TerminalApp
from iclaw.tools import Permissions, add_mock_tools, builtin_registry


class Harness:
    """Drive a terminal: `run(drive)` starts it and calls `drive(pipe, app)` beside it.

    `terminal=True` makes the console act as a terminal (live status line drawn); a mock
    tool `slow` (`slow_s` seconds) is registered beside the built-ins.
    """

    def __init__(self, workspace, model, mode="auto", terminal=False, slow_s=60.0):
        self.out = io.StringIO()
        self.model = model
        self.workspace = workspace
        self.mode = mode
        self.terminal = terminal
        self.slow_s = slow_s

    def make_agent(self, profile, approver):
        registry = builtin_registry(self.workspace, Permissions(mode=self.mode, approver=approver))
        add_mock_tools(registry, [{"name": "slow", "latency_s": self.slow_s}])
        return Agent(self.model, registry, load_profile(profile), Limits())

    def text(self) -> str:
        return self.out.getvalue()

    async def wait_for(self, marker: str, after: int = 0) -> int:
        """Wait until `marker` is printed at or after position `after`; return the position just past it."""
        with anyio.fail_after(10):
            while (found := self.text().find(marker, after)) < 0:
                await anyio.sleep(0.01)
        return found + len(marker)

    async def dialog(self, say: str, *exchanges: tuple[str, str | None]) -> TerminalApp:
        """Send `say`; for each (marker, keys) wait for the marker after the last one and type the keys; /exit."""

        async def drive(pipe, app):
            pipe.send_text(say + "\r")
            mark = 0
            for marker, keys in exchanges:
                mark = await self.wait_for(marker, mark)
                if keys is not None:
                    pipe.send_text(keys)
            pipe.send_text("/exit\r")

        return await self.run(drive)

    async def one_turn(self, until: str) -> TerminalApp:
        """Say "hi", wait until `until` is printed, then /exit."""
        return await self.dialog("hi", (until, None))

    async def run(self, drive, session=None, expect: int = 0) -> TerminalApp:
        console = Console(file=self.out, width=200, force_terminal=self.terminal, color_system=None)
        with create_pipe_input() as pipe:
            app = TerminalApp(self.make_agent, "v2", console=console, input=pipe, output=DummyOutput(), session=session)
            async with anyio.create_task_group() as group:
                if drive is not None:
                    group.start_soon(drive, pipe, app)
                with anyio.fail_after(20):
                    assert await app.run() == expect
                group.cancel_scope.cancel()
        return app
