"""`TurnRenderer`: draws one agent turn in the terminal from the agent's events.

A spinner while the model thinks, the reply streamed as markdown (printed whole when
the console is not a terminal), a panel per tool call
(arguments when it starts, a result summary when it ends), notes for retries, replans
and compactions, and a context meter `used / budget` after the turn. Output goes to a
rich `Console`, so tests can render into a string. Knows nothing about input handling.
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

__all__ = ["TurnRenderer", "meter_text"]

_RESULT_LINES = 6


def meter_text(used: int, budget: int) -> str:
    share = used / budget if budget else 0.0
    return f"context {used:,} / {budget:,} tokens ({share:.0%})"


class TurnRenderer:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.text = ""

    # The agent calls this for every event (a plain callable, no coroutine).
    def __call__(self, event: dict) -> None:
        handler = getattr(self, "_on_" + event["type"], None)
        if handler is not None:
            handler(event)

    def _start_live(self, renderable) -> None:
        if not self.console.is_terminal:
            return  # piped or captured output: no spinner frames, the reply is printed whole
        if self.live is None:
            # Transient: the live area is erased on stop and the final text printed once.
            self.live = Live(renderable, console=self.console, refresh_per_second=12, transient=True)
            self.live.start()
        else:
            self.live.update(renderable)

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
        self.stop()
        self._start_live(Spinner("dots", text=Text(" thinking...", style="dim")))

    def _on_text(self, event: dict) -> None:
        self.text += event["delta"]
        self._start_live(Markdown(self.text))

    def _on_message(self, event: dict) -> None:
        message = event["message"]
        if message.get("role") != "assistant":
            return
        self._end_live()
        self.text = ""
        content = (message.get("content") or "").strip()
        if content:
            self.console.print(Markdown(content))

    def _on_tool_start(self, event: dict) -> None:
        self._end_live()
        args = json.dumps(event.get("arguments") or {}, ensure_ascii=False, indent=2)
        self.console.print(Panel(Syntax(args, "json", word_wrap=True), title=f"[bold]{event['name']}[/]", title_align="left", border_style="cyan"))

    def _on_tool_end(self, event: dict) -> None:
        content = event.get("content") or ""
        lines = content.splitlines()
        shown = "\n".join(lines[:_RESULT_LINES]) + (f"\n... ({len(lines) - _RESULT_LINES} more lines)" if len(lines) > _RESULT_LINES else "")
        status = "ok" if event["ok"] else f"failed: {event.get('error_kind')}"
        retries = f", {event['attempts']} attempts" if event.get("attempts", 1) > 1 else ""
        title = f"{event['name']} -> {status} ({event.get('duration_s', 0):.2f}s{retries})"
        self.console.print(Panel(Text(shown or "(no output)"), title=title, title_align="left", border_style="green" if event["ok"] else "red"))

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

    def show_result(self, status: str, answer: str | None, error: str | None) -> None:
        self.stop()
        if status != "submitted":
            self.console.print(Panel(Text(error or status), title=status.replace("_", " "), border_style="red"))

    def show_meter(self, used: int, budget: int) -> None:
        self.console.print(Text(meter_text(used, budget), style="dim"))

    def show_approval(self, tool: str, subject: str, preview: str) -> None:
        self.stop()
        body = Syntax(preview, "diff", word_wrap=True) if preview.startswith(("---", "@@")) else Text(preview or subject)
        self.console.print(Group(Panel(body, title=f"{tool} wants to change the workspace", border_style="yellow"), Text("Allow? [y/N] ", style="bold yellow")))
