"""The sandbox launcher: `python -I -S launcher.py SPEC_JSON -- ARGV...` runs one command confined.

The launcher is the parent of the command and stays alive while it runs:

1. it becomes a child subreaper, so every orphaned descendant (`setsid -f`, a double
   fork) is re-parented to it rather than to init, and scopes its own signals with
   Landlock (ABI >= 6) so that `kill(-1)` from it reaches only its own sandbox;
2. it forks the command, which sets the resource limits, confines itself (Landlock
   layer for files, network and signals; the seccomp filter) and execs ARGV;
3. it answers the filter's metadata questions (`iclaw.tools.supervisor`) in a thread;
4. when the command exits, or the launcher gets SIGTERM (the tool's timeout, or the
   parent-death signal when the agent dies), it kills every remaining descendant — with
   `kill(-1)` inside its scope, or by walking /proc where the kernel cannot scope
   signals — reaps them, and exits with the command's code.

SPEC_JSON holds `parent` (the agent's pid), `confine` (bool), `read`, `write`, `devices`,
`network` (bool) and `limits` (processes, memory_mb, file_size_mb, cpu_s). Imports only the standard library
and its sibling modules: it runs before any site packages, in a fresh interpreter.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import socket
import sys
import threading
import time

# NOTE: `-I` keeps the script's own directory off sys.path; the siblings are appended, so
# they can never shadow a standard-library module.
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

import landlock  # noqa: E402
import seccomp  # noqa: E402
import supervisor  # noqa: E402

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_PDEATHSIG = 1
_EXEC_FAILED = 126
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: launcher.py SPEC_JSON -- COMMAND [ARG...]")
    spec, command = json.loads(argv[0]), argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # the agent died: clean up as on a timeout
    if os.getppid() != spec["parent"]:
        sys.exit(_EXEC_FAILED)  # the agent died before we asked; nothing started yet
    scoped = spec["confine"] and landlock.scope_only() and _really_scoped()
    limits = _limits(spec["limits"])
    ours, theirs = socket.socketpair()
    for signum in _STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: _finish(128 + signum, scoped))
    pid = os.fork()
    if pid == 0:
        ours.close()
        _child(spec, command, limits, theirs)
    theirs.close()
    try:
        _, fds, _, _ = socket.recv_fds(ours, 16, 1)
        ours.close()
        if fds:
            roots = list(spec["write"])
            threading.Thread(target=supervisor.serve, args=(fds[0], roots, seccomp.METADATA_CALLS), daemon=True).start()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    except BaseException as exc:  # noqa: BLE001 - whatever happened, nothing may outlive the launcher
        os.write(2, f"iclaw sandbox: launcher failed: {exc!r}\n".encode())
        code = _EXEC_FAILED
    _finish(128 - code if code < 0 else code, scoped)


def _child(spec: dict, command: list[str], limits: list[tuple[int, int]], channel: socket.socket) -> None:
    """In the forked child: limits, confinement, exec. Never returns."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    try:
        for which, value in limits:
            _, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        fds: list[int] = []
        if spec["confine"]:
            deny_network = not spec["network"]
            landlock.restrict(spec["read"], spec["write"], spec["devices"], deny_network=deny_network, scoped=True)
            listener = seccomp.install(deny_network=deny_network, guard_metadata=True)
            fds = [listener] if listener is not None else []
        socket.send_fds(channel, [b"x"], fds)
        for fd in fds:
            os.close(fd)
        channel.close()
        os.execvp(command[0], command)
    except OSError as exc:
        os.write(2, f"iclaw sandbox: cannot start {command[0]}: {exc}\n".encode())
    os._exit(_EXEC_FAILED)


def _limits(spec: dict) -> list[tuple[int, int]]:
    """(resource, value) pairs; the process limit counts on top of the user's running processes."""
    mib = 2**20
    out = [(resource.RLIMIT_CORE, 0)]
    for key, which, scale in (
        ("memory_mb", resource.RLIMIT_AS, mib),
        ("file_size_mb", resource.RLIMIT_FSIZE, mib),
        ("cpu_s", resource.RLIMIT_CPU, 1),
    ):
        if spec.get(key):
            out.append((which, int(spec[key] * scale)))
    running = _user_processes()
    if spec.get("processes") and running is not None:
        # RLIMIT_NPROC counts every process of the real user, so allow that many more.
        out.append((resource.RLIMIT_NPROC, running + int(spec["processes"])))
    return out


def _user_processes() -> int | None:
    """Processes of this user now; None when /proc cannot be read (e.g. inside another sandbox)."""
    uid = os.getuid()
    count = 0
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    for name in names:
        if name.isdigit():
            try:
                count += os.stat(f"/proc/{name}").st_uid == uid
            except OSError:
                continue
    return count


def _really_scoped() -> bool:
    """Belt and braces before relying on kill(-1): the parent must now be out of reach."""
    try:
        os.kill(os.getppid(), 0)
    except PermissionError:
        return True
    except ProcessLookupError:
        return False
    return False


def _finish(code: int, scoped: bool) -> None:
    """Kill and reap every remaining descendant, then exit with `code`."""
    signal.pthread_sigmask(signal.SIG_BLOCK, set(_STOP_SIGNALS))
    while True:
        if scoped:
            try:
                os.kill(-1, signal.SIGKILL)  # scoped: only processes of this sandbox
            except ProcessLookupError:
                pass
        else:
            for pid in _descendants(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            os._exit(code)
        time.sleep(0.005)


def _descendants(root: int) -> list[int]:
    """Every process below `root`, from the parent links in /proc."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []  # nothing to walk: an enclosing sandbox will clean up
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


if __name__ == "__main__":
    main(sys.argv[1:])
