"""`TurnRenderer`: draws one agent turn in the terminal from the agent's events.

A live status line while the turn runs (elapsed time, phase, tokens so far, tok/s, from
`TurnProgress`), the reply streamed as markdown above it (printed whole when the console
is not a terminal), a panel per tool call (arguments when it starts, a result summary
when it ends), notes for retries, replans and compactions, one footer line per turn
(`1,390 in · 12 out · 17.1 s · 2 tools`) and the context meter `used / budget`.

When the user is asked before changes (`confirming`), a changing tool's arguments are not
drawn at its start: the approval question shows them once (the diff or the command),
and a call nobody was asked about gets its arguments drawn with its result. Output goes
to a rich `Console`, so tests can render into a string. Knows nothing about input handling.
"""

from __future__ import annotations

import json

from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.text import Text

from iclaw.progress import TurnProgress, footer, retry_note

__all__ = ["TurnRenderer", "meter_text", "approval_title"]

_RESULT_LINES = 6


def meter_text(used: int, budget: int) -> str:
    share = used / budget if budget else 0.0
    return f"context {used:,} / {budget:,} tokens ({share:.0%})"


def approval_title(tool: str, action: str, subject: str) -> str:
    """The question's title, worded after what the call does (a command is run, not 'a change').

    A tool from an MCP server (`server.tool`) has arguments, not a path, for its subject:
    the body shows them, the title says only what kind of call it is.
    """
    external = "." in tool
    if action == "exec":
        what = "Python code" if tool == "run_python" else "a command" if tool == "run_shell" else ""
        return f"{tool} wants to run {what}".rstrip()
    if action == "write":
        return f"{tool} wants to {'make a change' if external else f'change {subject}'}"
    if action == "net":
        return f"{tool} wants to fetch {subject}"
    return f"{tool} wants to {action} {subject}"


class _LiveStatus:
    """The live area: the reply streamed so far, then a spinner with the progress line."""

    def __init__(self, renderer: "TurnRenderer") -> None:
        self.renderer = renderer
        self.spinner = Spinner("dots")

    def __rich_console__(self, console, options):
        self.spinner.text = Text(" " + self.renderer.progress.status_line(), style="dim")
        if self.renderer.text:
            yield Markdown(self.renderer.text)
        yield self.spinner


class TurnRenderer:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.text = ""
        self.progress = TurnProgress()
        self.confirming = False  # set by the app in `ask` mode
        self.summary: dict | None = None
        self._unshown: dict[str, list[dict]] = {}  # tool name -> starts whose arguments are not drawn yet

    # The agent calls this for every event (a plain callable, no coroutine).
    def __call__(self, event: dict) -> None:
        self.progress(event)
        handler = getattr(self, "_on_" + event["type"], None)
        if handler is not None:
            handler(event)

    def status_line(self) -> str:
        return self.progress.status_line()

    def _start_live(self) -> None:
        if not self.console.is_terminal or self.live is not None:
            return  # piped or captured output: no spinner frames, the reply is printed whole
        # Transient: the live area is erased on stop; what it showed is printed once.
        self.live = Live(_LiveStatus(self), console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def _end_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def stop(self) -> None:
        """End the live area; text streamed so far but not yet printed (a cancelled turn) is kept."""
        self._end_live()
        if self.text.strip():
            self.console.print(Markdown(self.text + " ..."))
        self.text = ""

    def _on_step_start(self, event: dict) -> None:
        if self.text.strip():
            self.console.print(Markdown(self.text))
        self.text = ""
        self._start_live()

    def _on_text(self, event: dict) -> None:
        self.text += event["delta"]

    def _on_message(self, event: dict) -> None:
        message = event["message"]
        if message.get("role") != "assistant":
            return
        self.text = ""
        content = (message.get("content") or "").strip()
        if content:
            self.console.print(Markdown(content))

    def _on_tool_start(self, event: dict) -> None:
        if self.confirming and not event.get("read_only", True):
            self._unshown.setdefault(event["name"], []).append(event)
            return
        self._show_call(event)

    def _show_call(self, event: dict) -> None:
        args = json.dumps(event.get("arguments") or {}, ensure_ascii=False, indent=2)
        self.console.print(Panel(Syntax(args, "json", word_wrap=True), title=f"[bold]{event['name']}[/]", title_align="left", border_style="cyan"))

    def _on_tool_end(self, event: dict) -> None:
        waiting = self._unshown.get(event["name"]) or []
        start = next((e for e in waiting if e.get("id") == event.get("id")), None)
        if start is not None:
            waiting.remove(start)
            self._show_call(start)
        content = event.get("content") or ""
        lines = content.splitlines()
        shown = "\n".join(lines[:_RESULT_LINES]) + (f"\n... ({len(lines) - _RESULT_LINES} more lines)" if len(lines) > _RESULT_LINES else "")
        kind = event.get("error_kind")
        status = "ok" if event["ok"] else "declined by the user" if kind == "declined" else f"failed: {kind}"
        retries = f", {event['attempts']} attempts" if event.get("attempts", 1) > 1 else ""
        title = f"{event['name']} -> {status} ({event.get('duration_s', 0):.2f}s{retries})"
        self.console.print(Panel(Text(shown or "(no output)"), title=title, title_align="left", border_style="green" if event["ok"] else "red"))

    def _on_model_retry(self, event: dict) -> None:
        self.console.print(Text("  " + retry_note(event), style="yellow"))

    def _on_tool_retry(self, event: dict) -> None:
        self.console.print(Text(f"  retrying {event['name']} (attempt {event['attempt'] + 1}) after: {event['error']}", style="yellow"))

    def _on_replan(self, event: dict) -> None:
        self.console.print(Text("  tool failures: asking the model for a new plan", style="yellow"))

    def _on_plan_pinned(self, event: dict) -> None:
        self.console.print(Panel(Markdown(event["plan"]), title="plan (pinned)", title_align="left", border_style="magenta"))

    def _on_compaction(self, event: dict) -> None:
        detail = f" via {event['source']}" if event.get("source") else ""
        self.console.print(Text(f"  memory {event['stage']}{detail}: {event['before']:,} -> {event['after']:,} tokens", style="dim"))

    def _on_context_overflow(self, event: dict) -> None:
        self.console.print(Text("  the server said the prompt is too long: compacting memory", style="yellow"))

    def _on_end(self, event: dict) -> None:
        self._end_live()
        self.summary = event

    def show_result(self, status: str, answer: str | None, error: str | None) -> None:
        self.stop()
        self._unshown.clear()
        if status != "submitted":
            self.console.print(Panel(Text(error or status), title=status.replace("_", " "), border_style="red"))
        if self.summary is not None:
            self.console.print(Text(footer(self.summary), style="dim"))
            self.summary = None

    def show_meter(self, used: int, budget: int) -> None:
        self.console.print(Text(meter_text(used, budget), style="dim"))

    def show_approval(self, request, choices: str) -> None:
        """The question: what the call does (title), the diff or the command once (body), the choices."""
        self._end_live()
        waiting = self._unshown.get(request.tool)
        if waiting:
            waiting.pop(0)  # its arguments are shown now, in the question
        preview = request.preview or request.subject
        if preview.startswith(("---", "@@")):
            body = Syntax(preview, "diff", word_wrap=True)
        elif request.tool == "run_python":
            body = Syntax(preview, "python", word_wrap=True)
        else:
            body = Text(preview)
        title = approval_title(request.tool, request.action, request.subject)
        self.console.print(Group(Panel(body, title=title, border_style="yellow"), Text(choices, style="bold yellow")))

    def resume_live(self) -> None:
        """After a question: the status line comes back while the turn runs on."""
        self._start_live()
