"""The interactive terminal: prompt-toolkit input, rich output, slash commands."""

from iclaw.terminal.app import TerminalApp

__all__ = ["TerminalApp"]
