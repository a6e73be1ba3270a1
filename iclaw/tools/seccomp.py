"""A seccomp filter for sandboxed commands: what Landlock (up to ABI 7) cannot rule.

Landlock's network rules cover TCP only, and it has no rights for metadata. So:

- with the network denied, `socket()` fails with EACCES for every family (UDP, raw,
  netlink, Unix), and so does `io_uring_setup` (an io_uring could open sockets without a
  `socket()` call); `socketpair()` still works, so pipes between threads do;
- the path-based metadata calls (chmod, chown, utimes, extended attributes) are handed to
  a supervisor (`SECCOMP_RET_USER_NOTIF`, see `iclaw.tools.supervisor`) that lets them
  through only for paths inside the sandbox's writable directories. The fd-based forms
  need an fd the process could open, which Landlock already rules.

Calls from another ABI (x32, or 32-bit code on x86_64) are refused outright. Imports only
the standard library (it runs in the launcher). Knows syscall numbers, not paths.
"""

from __future__ import annotations

import ctypes
import errno
import platform

__all__ = ["install", "METADATA_CALLS", "available"]

# syscall -> (index of the dirfd argument or None, index of the path argument, index of the flags argument or None)
_X86_64 = {
    "arch": 0xC000003E, "seccomp": 317, "socket": 41, "io_uring_setup": 425,
    "metadata": {
        90: (None, 0, None), 268: (0, 1, None), 452: (0, 1, 3),  # chmod, fchmodat, fchmodat2
        92: (None, 0, None), 94: (None, 0, None), 260: (0, 1, 4),  # chown, lchown, fchownat
        132: (None, 0, None), 235: (None, 0, None), 261: (0, 1, None), 280: (0, 1, 3),  # utime(s), futimesat, utimensat
        188: (None, 0, None), 189: (None, 0, None), 197: (None, 0, None), 198: (None, 0, None),  # (l)set/removexattr
        463: (0, 1, 2), 466: (0, 1, 2),  # setxattrat, removexattrat
    },
}
_AARCH64 = {
    "arch": 0xC00000B7, "seccomp": 277, "socket": 198, "io_uring_setup": 425,
    "metadata": {
        53: (0, 1, None), 452: (0, 1, 3), 54: (0, 1, 4), 88: (0, 1, 3),  # fchmodat(2), fchownat, utimensat
        5: (None, 0, None), 6: (None, 0, None), 14: (None, 0, None), 15: (None, 0, None),
        463: (0, 1, 2), 466: (0, 1, 2),
    },
}
_TABLES = {"x86_64": _X86_64, "aarch64": _AARCH64}

_LD_ABS_W, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_USER_NOTIF = 0x7FFF0000, 0x00050000, 0x7FC00000
_SET_MODE_FILTER, _FLAG_NEW_LISTENER = 1, 1 << 3
_X32_BIT = 0x40000000


class _Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def _table() -> dict | None:
    return _TABLES.get(platform.machine()) if platform.system() == "Linux" else None


def available() -> bool:
    return _table() is not None


METADATA_CALLS: dict[int, tuple[int | None, int, int | None]] = (_table() or {}).get("metadata", {})


def _assemble(table: dict, deny: list[int], notify: list[int]) -> list[tuple[int, int, int, int]]:
    """The BPF program; jumps name their targets "deny" / "notify" until resolved."""
    body: list[tuple] = [(_LD_ABS_W, 0, 0, 4), (_JEQ, 0, "deny", table["arch"]), (_LD_ABS_W, 0, 0, 0)]
    if table is _X86_64:
        body.append((_JGE, "deny", 0, _X32_BIT))
    body += [(_JEQ, "deny", 0, nr) for nr in deny]
    body += [(_JEQ, "notify", 0, nr) for nr in notify]
    body.append((_RET, 0, 0, _RET_ALLOW))
    targets = {"deny": len(body), "notify": len(body) + 1}
    body += [(_RET, 0, 0, _RET_ERRNO | errno.EACCES), (_RET, 0, 0, _RET_USER_NOTIF)]
    resolved = []
    for i, (code, jt, jf, k) in enumerate(body):
        jt = targets[jt] - i - 1 if isinstance(jt, str) else jt
        jf = targets[jf] - i - 1 if isinstance(jf, str) else jf
        resolved.append((code, jt, jf, k))
    return resolved


def install(deny_network: bool, guard_metadata: bool) -> int | None:
    """Install the filter on this thread's process; the supervisor's listener fd, or None.

    Needs no_new_privs (set by the Landlock restriction first). Raises OSError."""
    table = _table()
    if table is None:
        raise OSError("seccomp filters are not supported on this platform")
    deny = [table["socket"], table["io_uring_setup"]] if deny_network else []
    notify = sorted(table["metadata"]) if guard_metadata else []
    code = _assemble(table, deny, notify)
    program = (_Instruction * len(code))(*[_Instruction(*ins) for ins in code])
    fprog = _Program(len(code), program)
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _FLAG_NEW_LISTENER if notify else 0
    fd = libc.syscall(table["seccomp"], ctypes.c_uint(_SET_MODE_FILTER), ctypes.c_uint(flags), ctypes.byref(fprog))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")
    return fd if notify else None
