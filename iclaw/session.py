"""Saved sessions: interactive conversations stored as trajectory JSONL files, resumable by id.

A session file is the agent's trajectory (see `iclaw.trajectory`) in
`$ICLAW_HOME/sessions/<id>.jsonl`; its latest `memory` event holds what is needed to
resume (verbatim turns, summaries, pinned items). Knows nothing about the terminal.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from iclaw.config import data_dir
from iclaw.errors import SessionError
from iclaw.trajectory import read_trajectory

__all__ = ["SavedSession", "new_session_id", "session_path", "list_sessions", "load_session"]


@dataclass
class SavedSession:
    path: Path
    events: list[dict]

    @property
    def memory_state(self) -> dict:
        for event in reversed(self.events):
            if event.get("type") == "memory":
                return event.get("state") or {}
        return {}

    @property
    def transcript(self) -> list[dict]:
        return [e["message"] for e in self.events if e.get("type") == "message" and isinstance(e.get("message"), dict)]


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def session_path(session_id: str) -> Path:
    return sessions_dir() / f"{session_id}.jsonl"


def list_sessions() -> list[tuple[str, float, str]]:
    """(id, modified time, first user message) of saved sessions, newest first."""
    out = []
    for path in sorted(sessions_dir().glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True):
        first = next((m.get("content") or "" for m in SavedSession(path, read_trajectory(path)).transcript if m.get("role") == "user"), "")
        out.append((path.stem, path.stat().st_mtime, first[:80]))
    return out


def load_session(id_or_path: str) -> SavedSession:
    path = Path(id_or_path).expanduser()
    if not path.is_file():
        path = session_path(id_or_path)
    if not path.is_file():
        known = ", ".join(s[0] for s in list_sessions()[:5]) or "none saved yet"
        raise SessionError(f"no saved session {id_or_path!r} (looked in {sessions_dir()}); recent: {known}")
    try:
        events = read_trajectory(path)
    except OSError as exc:
        raise SessionError(f"cannot read session file {path}: {exc}") from exc
    session = SavedSession(path, events)
    if not session.memory_state:
        raise SessionError(f"{path} has no memory snapshot to resume from (was it written by iclaw?)")
    return session
