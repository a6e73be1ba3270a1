"""The sandbox attack corpus: every tool, called directly as an attacker would, beside a secret.

Each attack runs against a fresh workspace with `secret.txt` (and an outside directory)
next to it, a victim process, a TCP and a UDP listener, and an API key in the agent's
environment. An attack *escapes* when the secret or the key shows up in the result,
anything outside the workspace changes (content, mode, times, new files, /dev/shm), a
process it started outlives the call, the victim dies, a listener hears from it, a file
grows past the size limit, the output is not capped, or the call overruns its timeout.

With Landlock every attack must be blocked; without it (`use_landlock=False`, as on an
old kernel) the command tools must refuse and the file tools still block. Both runs print
their table (`pytest -s` shows it).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from iclaw.executor import ToolExecutor
from iclaw.providers.turn import ToolCall
from iclaw.tools import Permissions, builtin_registry
from iclaw.tools.landlock import abi_version
from iclaw.tools.policy import ResourceLimits, SandboxPolicy

SECRET = "TOP-SECRET-7f3a9c"
API_KEY = "sk-corpus-5d1e2b"
TIMEOUT_S = 3.0
# A hang (a FIFO read, a backtracking regex) never ends; a starved machine is merely slow. The
# target is 1 s over the timeout (the table shows each call's time); the test allows far more.
OVERRUN_S = 15.0
FILE_LIMIT_MB = 8
MAX_OUTPUT = 12_000
MARK = "7771"  # `sleep 7771.x`: processes an attack leaves behind are found by it (in any command line)


@dataclass
class Arena:
    root: Path
    ws: Path
    secret: Path
    outside: Path
    victim: subprocess.Popen
    tcp: socket.socket
    udp: socket.socket
    shm_marker: Path

    @property
    def tcp_port(self) -> int:
        return self.tcp.getsockname()[1]

    @property
    def udp_port(self) -> int:
        return self.udp.getsockname()[1]


@dataclass
class Attack:
    name: str
    tool: str
    args: Callable[[Arena], dict]
    setup: Callable[[Arena], None] | None = None
    needs_abi: int = 1  # Landlock ABI the defence relies on (4: TCP, 6: signal scoping)
    extra: list[Callable[[Arena, str], str | None]] = field(default_factory=list)


def _py(code: str) -> Callable[[Arena], dict]:
    return lambda a: {"code": code.format(a=a, secret=a.secret, outside=a.outside, mark=MARK)}


def _sh(command: str) -> Callable[[Arena], dict]:
    return lambda a: {"command": command.format(a=a, secret=a.secret, outside=a.outside, mark=MARK)}


def _symlink(a: Arena) -> None:
    (a.ws / "link").symlink_to(a.secret)
    (a.ws / "dlink").symlink_to(a.outside)


def _hardlink(a: Arena) -> None:
    os.link(a.secret, a.ws / "hl")


def _fifo(a: Arena) -> None:
    os.mkfifo(a.ws / "fifo")


def _sparse(a: Arena) -> None:
    with open(a.ws / "huge.txt", "wb") as f:
        f.truncate(300 * 2**20)


def _long_line(a: Arena) -> None:
    (a.ws / "aaa.txt").write_text(("a" * 20_000 + "\n") * 50)


def _big_file(a: Arena, _: str) -> str | None:
    big = a.ws / "big"
    if big.exists() and big.stat().st_size > FILE_LIMIT_MB * 2**20:
        return f"wrote {big.stat().st_size} bytes, over the {FILE_LIMIT_MB} MiB limit"
    return None


def _output_capped(a: Arena, content: str) -> str | None:
    return f"returned {len(content)} characters" if len(content) > MAX_OUTPUT + 500 else None


B64 = "echo {b64} | base64 -d"
ATTACKS = [
    # file tools
    Attack("read ..", "read_file", lambda a: {"path": "../secret.txt"}),
    Attack("read absolute path", "read_file", lambda a: {"path": str(a.secret)}),
    Attack("read ~", "read_file", lambda a: {"path": "~/secret.txt"}),
    Attack("read symlinked file", "read_file", lambda a: {"path": "link"}, _symlink),
    Attack("read through symlinked dir", "read_file", lambda a: {"path": "dlink/inner.txt"}, _symlink),
    Attack("read hard link from outside", "read_file", lambda a: {"path": "hl"}, _hardlink),
    Attack("edit hard link from outside", "edit_file", lambda a: {"path": "hl", "search": "TOP", "replace": "x"}, _hardlink),
    Attack("write through hard link", "write_file", lambda a: {"path": "hl", "content": "pwned"}, _hardlink),
    Attack("write ..", "write_file", lambda a: {"path": "../evil.txt", "content": "x"}),
    Attack("write through symlinked dir", "write_file", lambda a: {"path": "dlink/new.txt", "content": "x"}, _symlink),
    Attack("read /proc parent environ", "read_file", lambda a: {"path": f"/proc/{os.getpid()}/environ"}),
    Attack("list_dir ..", "list_dir", lambda a: {"path": ".."}),
    Attack("glob ../*", "glob", lambda a: {"pattern": "../*"}),
    Attack("glob through symlinked dir", "glob", lambda a: {"pattern": "**/*"}, _symlink),
    Attack("grep ..", "grep", lambda a: {"pattern": "TOP", "path": ".."}),
    Attack("grep links", "grep", lambda a: {"pattern": "TOP-SECRET"}, lambda a: (_symlink(a), _hardlink(a))),
    Attack("read FIFO", "read_file", lambda a: {"path": "fifo"}, _fifo),
    Attack("read 300 MB sparse file", "read_file", lambda a: {"path": "huge.txt"}, _sparse),
    Attack("grep catastrophic regex", "grep", lambda a: {"pattern": "(a*)*b"}, _long_line),
    # run_python
    Attack("python open ..", "run_python", _py("print(open('../secret.txt').read())")),
    Attack("python open absolute", "run_python", _py("print(open('{secret}').read())")),
    Attack("python list outside", "run_python", _py("import os; print(os.listdir('{outside}'))")),
    Attack("python parent environ", "run_python",
           _py("import glob\nfor p in glob.glob('/proc/*/environ'):\n    try: print(open(p, 'rb').read())\n    except OSError: pass")),
    Attack("python chmod outside", "run_python", _py("import os; os.chmod('{secret}', 0o777)")),
    Attack("python utime outside", "run_python", _py("import os; os.utime('{secret}', (0, 0))")),
    Attack("python truncate outside", "run_python", _py("import os; os.truncate('{secret}', 0)")),
    Attack("python hard link in", "run_python", _py("import os; os.link('{secret}', 'hl2'); print(open('hl2').read())")),
    Attack("python symlink in", "run_python", _py("import os; os.symlink('{secret}', 'sl'); print(open('sl').read())")),
    Attack("python rename outside in", "run_python", _py("import os; os.rename('{secret}', 'stolen'); print(open('stolen').read())")),
    Attack("python create outside", "run_python", _py("open('{outside}/new.txt', 'w').write('x')")),
    Attack("python write /dev/shm", "run_python", _py("open('{a.shm_marker}', 'w').write('x')")),
    Attack("python tcp connect", "run_python",
           _py("import socket; socket.create_connection(('127.0.0.1', {a.tcp_port}), timeout=1).sendall(b'x')"), needs_abi=4),
    Attack("python udp send", "run_python",
           _py("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {a.udp_port}))")),
    Attack("python kill outside pid", "run_python", _py("import os; os.kill({a.victim.pid}, 9)"), needs_abi=6),
    Attack("python double fork", "run_python",
           _py("import os, time\nif os.fork() == 0:\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '{mark}.1'])\n"
               "    os._exit(0)\ntime.sleep(0.2)")),
    # run_shell
    Attack("shell cat ..", "run_shell", _sh("cat ../secret.txt")),
    Attack("shell base64 path", "run_shell", lambda a: {"command": "cat $(" + B64.format(b64=base64.b64encode(str(a.secret).encode()).decode()) + ")"}),
    Attack("shell dirname $PWD delete", "run_shell", _sh('D=$(dirname "$PWD"); rm -f "$D/secret.txt"; ls "$D"')),
    Attack("shell chmod via dirname", "run_shell", _sh('chmod 777 "$(dirname "$PWD")/secret.txt"')),
    Attack("shell touch via dirname", "run_shell", _sh('touch -d 2001-01-01 "$(dirname "$PWD")/secret.txt"')),
    Attack("shell append through hard link", "run_shell", _sh("echo pwned >> hl; cat hl"), _hardlink),
    Attack("shell /proc environ sweep", "run_shell", _sh("cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep sk-")),
    Attack("shell /dev/shm", "run_shell", _sh("echo x > {a.shm_marker}; ls /dev/shm")),
    Attack("shell setsid survivor", "run_shell", _sh("setsid -f sleep {mark}.2 </dev/null >/dev/null 2>&1; echo ok")),
    Attack("shell background survivor", "run_shell", _sh("(nohup sleep {mark}.3 >/dev/null 2>&1 &); echo ok")),
    Attack("shell kill outside pid", "run_shell", _sh("kill -9 {a.victim.pid}"), needs_abi=6),
    Attack("shell /dev/tcp connect", "run_shell", _sh("echo x > /dev/tcp/127.0.0.1/{a.tcp_port}"), needs_abi=4),
    Attack("shell sleep past timeout", "run_shell", _sh("sleep {mark}.4")),
    Attack("shell huge output", "run_shell", _sh("yes corpus | head -c 50000000"), extra=[lambda a, c: _output_capped(a, c)]),
    Attack("shell huge file", "run_shell", _sh("head -c 64M /dev/zero > big; ls -l big"), extra=[lambda a, c: _big_file(a, c)]),
]


def _fingerprint(root: Path, ws: Path) -> dict:
    """Content, mode and times of everything outside the workspace."""
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != ws]
        for name in [*files, *dirnames]:
            path = Path(dirpath, name)
            st = os.lstat(path)
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            out[str(path)] = (data, st.st_mode, st.st_mtime_ns, st.st_size)
    return out


def _survivors() -> list[str]:
    """`pid ppid state` of every marked process still there."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if MARK.encode() in cmdline:  # `sleep 7771.x`, or `setsid ... 7771.x` not yet exec'd
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = cmdline.replace(b"\0", b" ").decode().strip()
            found.append(f"{pid} ({command}) ppid {stat[1]} state {stat[0]}")
    return found


def _heard(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        if sock.type == socket.SOCK_STREAM:
            conn, _ = sock.accept()
            conn.close()
        else:
            sock.recvfrom(16)
    except (BlockingIOError, OSError):
        return False
    return True


@pytest.fixture
def arena(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    ws = tmp_path / "workspace"
    ws.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "inner.txt").write_text(SECRET + " inner\n")
    victim = subprocess.Popen(["sleep", "300"])
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    shm = Path("/dev/shm") / f"iclaw-corpus-{os.getpid()}"
    yield Arena(tmp_path, ws, secret, outside, victim, tcp, udp, shm)
    victim.kill()
    victim.wait()
    tcp.close()
    udp.close()
    shm.unlink(missing_ok=True)


def _reset(a: Arena) -> None:
    for path in sorted(a.ws.rglob("*"), reverse=True):
        path.unlink() if path.is_symlink() or not path.is_dir() else path.rmdir()
    a.secret.write_text(SECRET + "\n")
    os.chmod(a.secret, 0o644)


async def _run(arena: Arena, attack: Attack, landlock: bool, call=None) -> tuple[str, str]:
    """(outcome, detail): outcome is blocked | refused | ESCAPED.

    `call(tool, arguments) -> ToolResult`, when given, makes the call some other way (an MCP client)."""
    _reset(arena)
    if attack.setup:
        attack.setup(arena)
    policy = SandboxPolicy(limits=ResourceLimits(file_size_mb=FILE_LIMIT_MB, memory_mb=1024))
    registry = builtin_registry(
        arena.ws, Permissions(mode="auto"), command_timeout_s=TIMEOUT_S, max_output_chars=MAX_OUTPUT,
        policy=policy, use_landlock=landlock,
    )
    before = _fingerprint(arena.root, arena.ws)
    started = time.monotonic()
    if call is not None:
        result = await call(attack.tool, attack.args(arena))
    else:
        executor = ToolExecutor(registry, timeout_s=TIMEOUT_S)
        [result] = await executor.run([ToolCall(id="c1", name=attack.tool, arguments=attack.args(arena))])
    elapsed = time.monotonic() - started
    time.sleep(0.1)  # let a survivor or a late packet show itself
    escapes = []
    if SECRET in result.content or API_KEY in result.content:
        escapes.append("secret in the result")
    if _fingerprint(arena.root, arena.ws) != before:
        escapes.append("outside changed")
    if arena.shm_marker.exists():
        escapes.append("wrote /dev/shm")
    if arena.victim.poll() is not None:
        escapes.append("victim killed")
    survivors = _survivors()
    if survivors:
        escapes.append(f"process(es) survived: {', '.join(survivors)}")
        for entry in survivors:
            os.kill(int(entry.split()[0]), signal.SIGKILL)
    if _heard(arena.tcp) or _heard(arena.udp):
        escapes.append("network reached")
    if elapsed > TIMEOUT_S + OVERRUN_S:
        escapes.append(f"took {elapsed:.1f}s with a {TIMEOUT_S:g}s timeout")
    escapes += [e for check in attack.extra if (e := check(arena, result.content))]
    if escapes:
        return "ESCAPED", "; ".join(escapes)
    first = result.content.strip().splitlines()[0][:70] if result.content.strip() else "(empty)"
    if not result.ok and "Landlock" in result.content:
        return "refused", first
    return "blocked", f"{elapsed:.2f}s {first}"


def _table(title: str, rows: list[tuple[Attack, str, str]]) -> str:
    lines = [title, f"{'attack':34} {'tool':10} {'outcome':8} detail"]
    lines += [f"{a.name:34} {a.tool:10} {outcome:8} {detail}" for a, outcome, detail in rows]
    counts = {o: sum(1 for _, oc, _ in rows if oc == o) for o in ("blocked", "refused", "ESCAPED")}
    lines.append(f"{len(rows)} attacks: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
    return "\n".join(lines)


def test_the_corpus_is_big_enough():
    assert len(ATTACKS) >= 40
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.anyio
@pytest.mark.skipif(abi_version() < 1, reason="this kernel offers no Landlock; the refusal test covers it")
async def test_no_attack_escapes_with_landlock(arena):
    abi = abi_version()
    rows = [(a, *(await _run(arena, a, landlock=True))) for a in ATTACKS if a.needs_abi <= abi]
    print("\n" + _table(f"sandbox corpus, Landlock ABI {abi}", rows))
    escaped = [(a.name, detail) for a, outcome, detail in rows if outcome == "ESCAPED"]
    assert escaped == []
    assert all(outcome == "blocked" for _, outcome, _ in rows)


@pytest.mark.anyio
async def test_without_landlock_commands_are_refused_and_file_tools_still_block(arena):
    rows = [(a, *(await _run(arena, a, landlock=False))) for a in ATTACKS]
    print("\n" + _table("sandbox corpus, no Landlock", rows))
    for attack, outcome, detail in rows:
        expected = "refused" if attack.tool in ("run_shell", "run_python") else "blocked"
        assert outcome == expected, (attack.name, detail)
