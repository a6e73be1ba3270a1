"""`AGENTS.md`: project instructions found beside the workspace, for the system prompt.

The file is looked for in the workspace, then in each parent up to the repository root
(the first directory holding `.git`); outside a repository only the workspace itself
counts, so a task's scratch directory never picks up a stranger's file. Its text goes
under `AGENTS_MD_HEADING`, cut to `memory.instructions_tokens` tokens by the session's
counter. It is part of the system prompt, so the memory budget counts it and compaction
never drops it. Knows nothing about the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iclaw.prompts import AGENTS_MD_HEADING
from iclaw.tokens import TokenCounter

__all__ = ["ProjectInstructions", "find_agents_md", "load_instructions", "with_instructions"]

FILE_NAME = "AGENTS.md"
_CUT_NOTE = "\n[... the rest of AGENTS.md is cut to fit its budget of {limit} tokens]"


@dataclass
class ProjectInstructions:
    path: Path
    text: str
    tokens: int
    truncated: bool

    def render(self) -> str:
        return f"{AGENTS_MD_HEADING}\n{self.text}"


def find_agents_md(workspace: Path) -> Path | None:
    """The nearest AGENTS.md from the workspace up to the repository root (or the workspace alone)."""
    start = Path(workspace).resolve()
    chain = [start, *start.parents]
    root = next((d for d in chain if (d / ".git").exists()), None)
    for directory in chain:
        candidate = directory / FILE_NAME
        if candidate.is_file():
            return candidate
        if root is None or directory == root:
            return None
    return None


def load_instructions(workspace: Path, counter: TokenCounter, max_tokens: int) -> ProjectInstructions | None:
    """The instructions to add, or None when there is no AGENTS.md (or it is empty, or the cap is 0)."""
    path = find_agents_md(workspace)
    if path is None or max_tokens <= 0:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None  # unreadable: the session goes on without it
    if not text:
        return None
    tokens = counter.count(text)
    truncated = tokens > max_tokens
    if truncated:
        text = _cut(text, counter, max_tokens)
        tokens = counter.count(text)
    return ProjectInstructions(path, text, tokens, truncated)


def _cut(text: str, counter: TokenCounter, max_tokens: int) -> str:
    """The longest prefix (at a line end when possible) that fits with the cut note."""
    note = _CUT_NOTE.format(limit=max_tokens)
    budget = max_tokens - counter.count(note)
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on characters: counters are monotone in the prefix length
        mid = (lo + hi + 1) // 2
        if counter.count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    head = text[:lo]
    if "\n" in head[len(head) // 2 :]:
        head = head[: head.rindex("\n")]
    return head.rstrip() + note


def with_instructions(system_prompt: str, instructions: ProjectInstructions | None) -> str:
    return system_prompt if instructions is None else f"{system_prompt.rstrip()}\n\n{instructions.render()}"
