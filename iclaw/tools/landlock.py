"""Linux Landlock rulesets: what a command may read, write, connect to and signal.

`restrict(read, write, ...)` confines the calling process and everything it later starts:
files and directories beneath `write` may be read, written, created, removed, renamed,
linked and truncated; beneath `read` they may only be read and executed; nothing else in
the file system is reachable at all (home directories, other temp dirs, `/proc`, ...).
With `deny_network` TCP bind and connect are refused (ABI 4); with `scoped` the process
can signal only processes of its own sandbox (ABI 6) and cannot reach abstract Unix
sockets outside it. Landlock also forbids ptrace of processes outside the sandbox and
mount changes from inside it. `scope_only()` is the thin outer layer the launcher puts on
itself: signals scoped, files untouched.

Each right is used only when the kernel's ABI knows it; `abi_version()` says which (0:
no Landlock). Imports only the standard library: the launcher loads it before any site
packages. Knows nothing about workspaces or tools.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["abi_version", "restrict", "scope_only", "set_no_new_privs"]

_SYSCALLS = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}  # same on x86_64 and aarch64
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_DIR_WRITE = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
_REFER = 1 << 13  # ABI 2: link or rename across directories
_TRUNCATE = 1 << 14  # ABI 3
_IOCTL_DEV = 1 << 15  # ABI 5
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # the rights a rule on a file may carry
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

READ = _EXECUTE | _READ_FILE | _READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """Landlock ABI version offered by the kernel, 0 if none."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return 0
    libc = _libc()
    version = libc.syscall(_SYSCALLS["create_ruleset"], None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def _fs_rights(abi: int) -> int:
    rights = READ | _WRITE_FILE | _DIR_WRITE
    return rights | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0) | (_IOCTL_DEV if abi >= 5 else 0)


def set_no_new_privs() -> None:
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def restrict(
    read: list[str],
    write: list[str],
    devices: dict[str, str] | None = None,
    *,
    deny_network: bool = True,
    scoped: bool = True,
) -> int:
    """Confine this process (and its future children) as described above; return the ABI used.

    `devices` maps single files (e.g. /dev/null) to "r" or "rw". Paths that do not exist
    are skipped. Raises OSError when the kernel has no Landlock or refuses a rule."""
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available on this kernel")
    fs = _fs_rights(abi)
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if deny_network and abi >= 4 else 0
    scope = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL if scoped and abi >= 6 else 0
    libc = _libc()
    ruleset = _create(libc, fs, net, scope, abi)
    try:
        for path in write:
            _add_path(libc, ruleset, path, fs)
        for path in read:
            _add_path(libc, ruleset, path, READ)
        for path, mode in (devices or {}).items():
            rights = _READ_FILE | (_WRITE_FILE | _TRUNCATE | _IOCTL_DEV if "w" in mode else 0)
            _add_path(libc, ruleset, path, rights & fs)
        _restrict_self(libc, ruleset)
    finally:
        os.close(ruleset)
    return abi


def scope_only() -> bool:
    """Scope this process's signals to its own sandbox, leaving file access alone (ABI >= 6).

    False when the kernel cannot scope signals; then nothing was changed."""
    abi = abi_version()
    if abi < 6:
        return False
    libc = _libc()
    ruleset = _create(libc, 0, 0, _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL, abi)
    try:
        _restrict_self(libc, ruleset)
    finally:
        os.close(ruleset)
    return True


def _create(libc: ctypes.CDLL, fs: int, net: int, scope: int, abi: int) -> int:
    attr = _RulesetAttr(fs, net, scope)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8  # struct landlock_ruleset_attr grew with the ABI
    ruleset = libc.syscall(_SYSCALLS["create_ruleset"], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    return ruleset


def _add_path(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        rule = _PathBeneath(allowed_access=rights, parent_fd=fd)
        if libc.syscall(_SYSCALLS["add_rule"], ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


def _restrict_self(libc: ctypes.CDLL, ruleset: int) -> None:
    set_no_new_privs()
    if libc.syscall(_SYSCALLS["restrict_self"], ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
