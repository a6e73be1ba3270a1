"""Confine a command's writes to the workspace with Linux Landlock, then exec it.

Run as a script, not imported by the child: `python -I -S landlock.py DIR... -- ARGV...`
restricts the process (and everything it starts) so that files can be created, written,
truncated, renamed or removed only beneath the listed directories (plus /dev/null), then
`exec`s ARGV. Reading stays allowed everywhere so compilers and interpreters work.
Landlock needs no privileges and survives `cd ..`, `python -c "open('/x', 'w')"` and
child processes: the kernel enforces it.

`abi_version()` is what the parent uses to decide whether the launcher can be used (0
when the kernel or a seccomp filter does not offer Landlock). This file imports only the
standard library: it runs before the interpreter has any site packages.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

_SYSCALLS = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}  # same on x86_64 and aarch64
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

_WRITE_FILE = 1 << 1
_WRITE_ACCESS_V1 = (
    _WRITE_FILE
    | 1 << 4  # REMOVE_DIR
    | 1 << 5  # REMOVE_FILE
    | 1 << 6  # MAKE_CHAR
    | 1 << 7  # MAKE_DIR
    | 1 << 8  # MAKE_REG
    | 1 << 9  # MAKE_SOCK
    | 1 << 10  # MAKE_FIFO
    | 1 << 11  # MAKE_BLOCK
    | 1 << 12  # MAKE_SYM
)
_REFER = 1 << 13  # ABI 2: rename/link across directories
_TRUNCATE = 1 << 14  # ABI 3


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


def restrict_writes(writable: list[str]) -> None:
    """Allow writes only beneath `writable` for this process and its children (raises OSError)."""
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available on this kernel")
    handled = _WRITE_ACCESS_V1 | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    libc = _libc()
    attr = ctypes.c_uint64(handled)  # struct landlock_ruleset_attr, first field only
    ruleset = libc.syscall(_SYSCALLS["create_ruleset"], ctypes.byref(attr), ctypes.c_size_t(8), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path in writable:
            _add_rule(libc, ruleset, path, handled)
        file_rights = _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0)
        _add_rule(libc, ruleset, "/dev/null", file_rights)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYSCALLS["restrict_self"], ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = _PathBeneath(allowed_access=rights, parent_fd=fd)
        if libc.syscall(_SYSCALLS["add_rule"], ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: landlock.py WRITABLE_DIR... -- COMMAND [ARG...]")
    split = argv.index("--")
    writable, command = argv[:split], argv[split + 1 :]
    try:
        restrict_writes(writable)
    except OSError as exc:
        sys.exit(f"iclaw sandbox: {exc}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
