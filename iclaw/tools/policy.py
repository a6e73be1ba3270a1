"""`SandboxPolicy`: what a command run by a tool may reach, and the limits it runs under.

The profile's `permissions` section carries it (`network`, `unsafe_shell`, `limits`);
the process runner turns it into the launcher's rules. Reads are allowed beneath the
workspace, the command's private TMPDIR, the Python installation running iclaw (and its
virtual environment) and the system directories an interpreter or compiler needs; writes
only beneath the workspace and TMPDIR. Knows paths and limits, not processes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ResourceLimits", "SandboxPolicy", "system_read_paths", "DEVICES"]

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/sys/devices/system/cpu")
# The parts of /etc that programs read to start (loader, locale, time zone, users, TLS roots,
# git and Python defaults), not the whole directory: it may hold credentials.
_ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ld.so.preload", "localtime", "timezone", "locale.alias",
    "locale.gen", "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf", "protocols",
    "services", "mime.types", "ssl", "ca-certificates", "ca-certificates.conf", "pki", "alternatives", "gitconfig",
    "inputrc", "terminfo", "magic", "magic.mime", "os-release", "debian_version", "python3",
    f"python{sys.version_info.major}.{sys.version_info.minor}",
)
DEVICES = {"/dev/null": "rw", "/dev/zero": "r", "/dev/full": "rw", "/dev/random": "r", "/dev/urandom": "r"}


class ResourceLimits(BaseModel):
    """setrlimit values for every process a command starts; null turns one off."""

    model_config = ConfigDict(extra="forbid")

    processes: int | None = Field(256, ge=1)  # on top of the user's running ones; the kernel exempts root
    memory_mb: int | None = Field(4096, ge=64)  # address space per process
    file_size_mb: int | None = Field(1024, ge=1)  # largest file a process may write
    cpu_s: int | None = Field(600, ge=1)  # CPU seconds per process


@dataclass
class SandboxPolicy:
    network: Literal["deny", "allow"] = "deny"
    unsafe_shell: bool = False  # run commands even where the kernel cannot confine them
    limits: ResourceLimits = field(default_factory=ResourceLimits)


def system_read_paths() -> list[str]:
    """Read-only (and executable) locations: system directories, selected /etc, this Python."""
    pythons = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    pythons |= {os.path.realpath(p) for p in pythons}
    pythons.add(os.path.dirname(os.path.realpath(sys.executable)))
    etc = [f"/etc/{name}" for name in _ETC]
    # Follow links out of /etc (resolv.conf often points into /run) so the file itself is readable.
    etc += [os.path.realpath(p) for p in etc if os.path.islink(p)]
    paths = [*_SYSTEM_DIRS, *etc, *sorted(pythons)]
    return [p for p in dict.fromkeys(paths) if os.path.exists(p)]
