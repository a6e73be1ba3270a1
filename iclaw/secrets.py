"""API keys held in this process's memory only, never in an environment anything else can read.

`take_secret(NAME)` moves `$NAME` out of the environment on first use: it is removed from
`os.environ` (so no child process inherits it) and, on Linux, its value is overwritten
in the environment block the kernel shows as `/proc/<pid>/environ`. Later calls return
the remembered value. Knows nothing about endpoints.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["take_secret"]

_REMEMBERED: dict[str, str] = {}


def take_secret(name: str) -> str | None:
    """The value of `$name` (None when unset and never seen), kept from now on in memory only."""
    value = os.environ.pop(name, None)
    if value:
        _REMEMBERED[name] = value
        _scrub_environment_block(name)
    return _REMEMBERED.get(name)


def _scrub_environment_block(name: str) -> None:
    """Zero NAME's value in the initial environment block (best effort: Linux, readable /proc)."""
    if platform.system() != "Linux":
        return
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end: fields 50 and 51 of stat(5)
    except (OSError, IndexError, ValueError):
        return
    block = ctypes.string_at(start, end - start)
    key = name.encode() + b"="
    offset = 0
    for entry in block.split(b"\0"):
        if entry.startswith(key):
            ctypes.memset(start + offset + len(key), 0, len(entry) - len(key))
        offset += len(entry) + 1
