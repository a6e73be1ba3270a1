"""`iclaw eval show RUN TASK`: one attempt as a readable transcript.

The header comes from the store (status, answer, checks with their details, counters);
the body from the attempt's trajectory JSONL, written by the agent: `message` events are
printed in full (role, text, tool calls), every other event (`tool_end`, `tool_retry`,
`compaction`, `replan`, `step`, `end`, ...) as one dim line with its timing. Unknown event
types are shown the same generic way, so a newer trajectory never breaks `show`.

Knows the trajectory's event shape (`type`, `t`, fields) and rich; nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from evals.store import ResultRecord, RunRecord
from iclaw.trajectory import read_trajectory

__all__ = ["render_transcript", "read_events"]

_ROLE_STYLE = {"system": "magenta", "user": "cyan", "assistant": "green", "tool": "yellow"}
_SKIP = {"memory"}  # resume snapshots: large and not part of the conversation
_MAX_TEXT = 4000


def read_events(path: Path) -> list[dict]:
    """Events of a trajectory file (non-JSON lines skipped); [] when the file is missing."""
    try:
        return read_trajectory(path)
    except OSError:
        return []


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + f"\n[... {len(text) - _MAX_TEXT} more characters]"


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
    return json.dumps(content, ensure_ascii=False)


def _message(event: dict) -> RenderableType:
    msg = event.get("message", event)
    role = str(msg.get("role", "?"))
    body = _content_text(msg.get("content"))
    for call in msg.get("tool_calls") or []:
        fn = call.get("function", call)
        body += f"\n→ {fn.get('name')}({fn.get('arguments')})"
    title = f"{role}" + (f" [{msg['name']}]" if msg.get("name") else "") + f"  t={event.get('t', '?')}s"
    return Panel(Text(_clip(body.strip()) or "(empty)"), title=title, title_align="left",
                 border_style=_ROLE_STYLE.get(role, "white"))


def _event_line(event: dict) -> RenderableType:
    rest = {k: v for k, v in event.items() if k not in ("type", "t")}
    if event.get("type") == "meta" and isinstance(rest.get("profile"), dict):
        rest["profile"] = rest["profile"].get("name")  # the full profile is in the run's config
    detail = json.dumps(rest, ensure_ascii=False, default=str)
    if len(detail) > 300:
        detail = detail[:299] + "…"
    return Text.from_markup(f"[dim]· {escape(str(event.get('type')))} t={event.get('t', '?')}s {escape(detail)}[/dim]")


def render_transcript(run: RunRecord, result: ResultRecord) -> RenderableType:
    status_style = {"passed": "green", "failed": "red", "error": "red", "harness_error": "yellow"}[result.status]
    head = [
        f"[bold]{escape(result.task_id)}[/bold] epoch {result.epoch} — run {escape(run.id)} "
        f"(model {escape(run.model)}, agent {escape(run.agent)})",
        f"status [{status_style}]{result.status}[/{status_style}]"
        f" · agent {escape(str(result.agent_status))} · steps {result.steps} · tool calls {result.tool_calls}"
        f" · tokens {result.tokens_in}/{result.tokens_out} · {result.wall_s:.2f}s · tries {result.attempts}",
        f"answer: {escape(repr(result.answer))}",
    ]
    if result.error:
        head.append(f"[red]error: {escape(result.error)}[/red]")
    for check in result.checks:
        mark = "[green]✓[/green]" if check.get("passed") else "[red]✗[/red]"
        head.append(f"  {mark} {escape(str(check.get('type')))}: {escape(str(check.get('detail')))}")
    parts: list[RenderableType] = [Text.from_markup("\n".join(head))]
    path = Path(result.trajectory_path) if result.trajectory_path else None
    events = read_events(path) if path else []
    if not events:
        parts.append(Text.from_markup(f"[dim](no trajectory at {escape(str(path))})[/dim]"))
    for event in events:
        if event.get("type") in _SKIP:
            continue
        parts.append(_message(event) if event.get("type") == "message" else _event_line(event))
    return Group(*parts)

