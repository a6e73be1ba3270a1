"""`ToolContext`: what the built-in tools share — the workspace, the permissions, the process runner.

Built once by `builtin_registry` and closed over by each tool; knows no tool.
"""

from __future__ import annotations

from dataclasses import dataclass

from iclaw.tools.permissions import Permissions
from iclaw.tools.process import ProcessRunner
from iclaw.tools.workspace import Workspace

__all__ = ["ToolContext"]


@dataclass
class ToolContext:
    workspace: Workspace
    permissions: Permissions
    runner: ProcessRunner
    max_read_chars: int = 20_000
