"""The metadata supervisor: decides the chmod / chown / utimes / xattr calls of sandboxed commands.

The seccomp filter (`iclaw.tools.seccomp`) stops those calls and notifies the launcher,
which runs `serve(listener, roots)` in a thread: it reads the call's path from the
caller's memory, resolves it the way the kernel would (relative to the caller's cwd or
directory fd), and lets the call continue only when the target — both with and without
following a final symlink — lies inside one of `roots`; otherwise the call fails with
EACCES. An unreadable path is refused.

NOTE: a call let through is re-read by the kernel, so a second thread of the caller that
rewrites the path string in between could win the race (see seccomp_unotify(2)). A
single-threaded program cannot. Imports only the standard library.
"""

from __future__ import annotations

import ctypes
import errno
import os

__all__ = ["serve"]

_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_PATH_MAX = 4096
_RECV, _SEND, _ID_VALID = 0xC0502100, 0xC0182101, 0x40082102
_FLAG_CONTINUE = 1


class _Data(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32), ("ip", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("data", _Data)]


class _Resp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32), ("flags", ctypes.c_uint32)]


def serve(listener: int, roots: list[str], calls: dict[int, tuple[int | None, int, int | None]]) -> None:
    """Answer notifications until the listener fails (every sandboxed process is gone)."""
    libc = ctypes.CDLL(None, use_errno=True)
    real_roots = [os.path.realpath(r) for r in roots]
    while True:
        notif = _Notif()
        if libc.ioctl(listener, ctypes.c_ulong(_RECV), ctypes.byref(notif)) != 0:
            if ctypes.get_errno() in (errno.EINTR, errno.ENOENT):
                continue  # interrupted, or the caller died before we picked its call up
            return
        allowed = _allowed(libc, listener, notif, real_roots, calls)
        resp = _Resp(id=notif.id, val=0, error=0 if allowed else -errno.EACCES, flags=_FLAG_CONTINUE if allowed else 0)
        libc.ioctl(listener, ctypes.c_ulong(_SEND), ctypes.byref(resp))  # ENOENT: the caller died meanwhile


def _allowed(libc: ctypes.CDLL, listener: int, notif: _Notif, roots: list[str], calls: dict) -> bool:
    spec = calls.get(notif.data.nr)
    if spec is None:
        return False
    dirfd_arg, path_arg, flags_arg = spec
    args = notif.data.args
    try:
        if args[path_arg] == 0:
            return True  # utimensat(fd, NULL, ...): an fd the caller opened under Landlock
        path = _read_string(notif.pid, args[path_arg])
        dirfd = ctypes.c_int32(args[dirfd_arg] & 0xFFFFFFFF).value if dirfd_arg is not None else _AT_FDCWD
        if path.startswith("/"):
            target = path
        else:
            link = "cwd" if dirfd == _AT_FDCWD else f"fd/{dirfd}"
            base = os.readlink(f"/proc/{notif.pid}/{link}")
            if not path and not (flags_arg is not None and args[flags_arg] & _AT_EMPTY_PATH):
                return False
            target = os.path.join(base, path) if path else base
    except (OSError, UnicodeDecodeError):
        return False
    # The caller's memory may have changed owner since: answer only a call that is still pending.
    if libc.ioctl(listener, ctypes.c_ulong(_ID_VALID), ctypes.byref(ctypes.c_uint64(notif.id))) != 0:
        return False
    followed = os.path.realpath(target)
    unfollowed = os.path.join(os.path.realpath(os.path.dirname(target)), os.path.basename(target))
    return all(any(p == r or p.startswith(r + "/") for r in roots) for p in (followed, unfollowed))


def _read_string(pid: int, address: int) -> str:
    """A NUL-terminated string from another process's memory, page by page (a page may be unmapped)."""
    out = bytearray()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        while len(out) < _PATH_MAX:
            mem.seek(address + len(out))
            want = 4096 - (address + len(out)) % 4096
            chunk = mem.read(want)
            if not chunk:
                raise OSError(errno.EFAULT, "unreadable path")
            end = chunk.find(b"\0")
            if end >= 0:
                return (out + chunk[:end]).decode("utf-8")
            out += chunk
    raise OSError(errno.ENAMETOOLONG, "path too long")
