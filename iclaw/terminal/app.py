"""`TerminalApp`: the interactive `iclaw` — read a line, run a turn, show it, repeat.

Input is prompt-toolkit (persistent history, Esc+Enter for a new line, completion of
slash commands, a bottom toolbar with the context meter); output is rich, drawn by
`TurnRenderer`. While a turn runs, the app listens to the keyboard itself (raw mode), so
Ctrl-C cancels the turn — the conversation is repaired and kept — and one key answers a
permission question in `ask` mode: `y` yes, `n` no, `a` always for this tool (for the
rest of the session), `t` no and type why (the model reads the reason). Every step is
saved to the session file, so `iclaw --resume ID` continues later.

At start (and on `/model`) the endpoint is asked what it serves (`GET /v1/models`), so a
server that is down or a model it does not serve is reported before the first message.
The banner names the model, base URL, workspace, profile and permission mode.

The app receives a factory that builds an agent for a profile name; it never wires
models or tools itself. Input and output are injectable (prompt-toolkit pipe input and
`DummyOutput`, a rich console on a string) so tests drive it without a terminal.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import anyio
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input, create_input
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys
from prompt_toolkit.output import Output
from rich.console import Console
from rich.text import Text

from iclaw.agent import Agent
from iclaw.errors import IclawError
from iclaw.session import SavedSession, new_session_id, session_path
from iclaw.terminal.commands import COMMANDS, SlashCommands, loaded_notes
from iclaw.terminal.render import TurnRenderer, meter_text
from iclaw.tools.permissions import Approval, Approver, Verdict

__all__ = ["TerminalApp"]

AgentFactory = Callable[[str, Approver], Agent]

_CHOICES = "[y] yes  [n] no  [a] always allow {tool} (this session)  [t] no, and tell the model why "


class _Question:
    """One pending approval, answered from key presses: y / n / a / t then a reason and Enter."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.event = anyio.Event()
        self.verdict = Verdict(False)
        self.always = False
        self.reason: list[str] | None = None  # collecting a reason after `t`

    def feed(self, press) -> None:
        if self.event.is_set():
            return
        if self.reason is not None:
            self._feed_reason(press)
            return
        key = (press.data or "").lower()
        if key == "t":
            self.reason = []
            self.console.print(Text("why not? (Enter sends) ", style="bold yellow"), end="")
            return
        self.always = key == "a"
        self._answer(Verdict(key in ("y", "a")))

    def _feed_reason(self, press) -> None:
        assert self.reason is not None
        if press.key in (Keys.Enter, Keys.ControlM, Keys.ControlJ) or press.data in ("\r", "\n"):
            self.console.print()
            self._answer(Verdict(False, "".join(self.reason).strip()))
        elif press.key in (Keys.Backspace, Keys.ControlH) or press.data in ("\x7f", "\x08"):
            if self.reason:
                self.reason.pop()
        elif press.data and press.data.isprintable():
            self.reason.append(press.data)
            self.console.print(press.data, end="", highlight=False, markup=False)

    def _answer(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.event.set()


class _SlashCompleter(Completer):
    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        if text.startswith("/") and " " not in text:
            for name, help_text in COMMANDS.items():
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text), display_meta=help_text)


class TerminalApp:
    def __init__(
        self,
        make_agent: AgentFactory,
        profile: str,
        *,
        console: Console | None = None,
        input: Input | None = None,
        output: Output | None = None,
        history_path: Path | None = None,
        session: SavedSession | None = None,
    ) -> None:
        self.make_agent = make_agent
        self.console = console or Console()
        self.input = input or create_input()
        self.output = output
        self.history: History = FileHistory(str(history_path)) if history_path else InMemoryHistory()
        self.renderer = TurnRenderer(self.console)
        self.commands = SlashCommands(self)
        self.session_id = new_session_id()
        self.agent = make_agent(profile, self.approve)
        self.agent.trajectory_path = session_path(self.session_id)
        self.agent.reset()
        if session is not None:
            self.resume(session)
        self._meter = meter_text(*self.agent.context_usage())
        self._turn_scope: anyio.CancelScope | None = None
        self._approval_lock = anyio.Lock()
        self._approval: _Question | None = None
        self.always_allowed: set[str] = set()  # tools the user allowed for the rest of the session

    # ---- session management (used by slash commands) ---------------------------------

    @property
    def session_file(self) -> Path:
        return self.agent.trajectory_path or session_path(self.session_id)

    def new_session(self) -> None:
        self.always_allowed.clear()
        self.session_id = new_session_id()
        self.agent.trajectory_path = session_path(self.session_id)
        self.agent.reset()
        self._refresh_meter()

    def resume(self, session: SavedSession) -> None:
        self.session_id = session.path.stem
        self.agent.trajectory_path = session.path
        self.agent.resume(session.events, session.memory_state)

    def switch_profile(self, name: str) -> None:
        agent = self.make_agent(name, self.approve)
        agent.trajectory_path = self.agent.trajectory_path
        agent.resume(self.agent.trajectory.events, self.agent.memory.snapshot())
        self.agent = agent
        self._refresh_meter()

    def show_meter(self) -> None:
        self._refresh_meter()
        self.renderer.show_meter(*self.agent.context_usage())

    def _refresh_meter(self) -> None:
        self._meter = meter_text(*self.agent.context_usage())

    # ---- the loop --------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return str(getattr(self.agent.model, "name", type(self.agent.model).__name__))

    @property
    def mode(self) -> str:
        permissions = getattr(self.agent.registry, "permissions", None)
        return permissions.mode if permissions is not None else "auto"

    async def check_model(self, name: str | None = None) -> None:
        """Ask the endpoint whether it serves `name` (default: the current model) and switch to it."""
        check = getattr(self.agent.model, "check_served", None)
        if check is not None:
            await check(name)

    def banner(self) -> Text:
        workspace = getattr(self.agent.registry.workspace, "root", None) or "."
        where = getattr(self.agent.model, "base_url", "in-process")
        return Text(
            f"iclaw · model {self.model_name} at {where}\n"
            f"workspace {workspace} · profile {self.agent.profile.name} · mode {self.mode} · session {self.session_id}\n"
            + (f"{notes}\n" if (notes := loaded_notes(self.agent)) else "")
            + "Type a task, /help for commands, Ctrl-D to leave.",
            style="bold",
        )

    async def run(self) -> int:
        try:
            await self.check_model()
        except IclawError as exc:
            self.console.print(Text(f"error: {exc}", style="red"))
            return 1
        self.console.print(self.banner())
        self.renderer.confirming = self.mode == "ask"
        bindings = KeyBindings()

        @bindings.add("escape", "enter")
        def _newline(event) -> None:
            event.current_buffer.insert_text("\n")

        prompt = PromptSession(
            history=self.history,
            completer=_SlashCompleter(),
            complete_while_typing=True,
            key_bindings=bindings,
            input=self.input,
            output=self.output,
        )
        while True:
            try:
                line = await prompt.prompt_async("iclaw> ", bottom_toolbar=self._toolbar)
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not await self.commands.dispatch(line):
                    break
                continue
            await self.run_turn(line)
        if self.session_file.exists():
            self.console.print(Text(f"session saved: iclaw --resume {self.session_id}", style="dim"))
        return 0

    def _toolbar(self) -> str:
        return f" {self.model_name} | {self.agent.profile.name} | {self.mode} | {self._meter}"

    async def run_turn(self, text: str) -> None:
        self.agent.on_event = self.renderer
        self._turn_scope = anyio.CancelScope()
        result = None
        try:
            with self._watch_keys(), self._turn_scope:
                result = await self.agent.turn(text)
        except IclawError as exc:
            self.renderer.stop()
            self.console.print(Text(f"error: {exc}", style="red"))
        except Exception as exc:  # a bug must not end the session the user built up
            self.renderer.stop()
            self.console.print(Text(f"internal error ({type(exc).__name__}): {exc}", style="red"))
        finally:
            self.agent.on_event = None
        if self._turn_scope.cancelled_caught:
            self.renderer.stop()
            self.agent.repair_after_cancel()
            self.console.print(Text("turn cancelled (the conversation is kept)", style="yellow"))
        elif result is not None:
            self.renderer.show_result(result.status, result.answer, result.error)
        self._turn_scope = None
        self.show_meter()

    @contextlib.contextmanager
    def _watch_keys(self):
        """While a turn runs: Ctrl-C cancels it, other keys answer a pending approval."""

        def on_keys() -> None:
            for press in self.input.read_keys():
                if press.key == Keys.ControlC:
                    if self._turn_scope is not None:
                        self._turn_scope.cancel()
                elif self._approval is not None:
                    self._approval.feed(press)

        with self.input.raw_mode(), self.input.attach(on_keys):
            yield

    async def approve(self, request: Approval) -> Verdict:
        """The `ask`-mode approver: show the diff or command once, wait for the user's choice."""
        async with self._approval_lock:
            if request.tool in self.always_allowed:
                return Verdict(True)
            self.renderer.show_approval(request, _CHOICES.format(tool=request.tool))
            self._approval = question = _Question(self.console)
            try:
                await question.event.wait()
            finally:
                self._approval = None
            verdict = question.verdict
            if question.always:
                self.always_allowed.add(request.tool)
                note = f"allowed; {request.tool} is allowed without asking for the rest of this session"
            elif verdict.allow:
                note = "allowed"
            else:
                note = "declined" + (f": {verdict.reason}" if verdict.reason else "")
            self.console.print(Text(note, style="green" if verdict.allow else "red"))
            self.renderer.resume_live()
            return verdict
