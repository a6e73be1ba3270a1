"""The sandbox attack corpus: every attempt to leave the workspace is refused, nothing outside changes."""

from __future__ import annotations

import os

import pytest

from iclaw.tools import Permissions, builtin_registry
from iclaw.tools.landlock import abi_version


def _snapshot(root):
    """Every path outside the workspace with its content, to prove nothing changed."""
    out = {}
    for dirpath, _, files in os.walk(root):
        if "workspace" in os.path.relpath(dirpath, root).split(os.sep):
            continue
        for name in files:
            path = os.path.join(dirpath, name)
            out[path] = open(path, "rb").read()
    return out


ATTACKS = [
    ("read_file", {"path": "../outside.txt"}),
    ("read_file", {"path": "/etc/passwd"}),
    ("read_file", {"path": "~/.bashrc"}),
    ("write_file", {"path": "../evil.txt", "content": "x"}),
    ("write_file", {"path": "sub/../../evil.txt", "content": "x"}),
    ("edit_file", {"path": "../outside.txt", "search": "do not", "replace": "did"}),
    ("list_dir", {"path": ".."}),
    ("glob", {"pattern": "../*"}),
    ("grep", {"pattern": "touch", "path": ".."}),
    ("run_shell", {"command": "cd .. && echo pwned > evil.txt"}),
    ("run_shell", {"command": "cat ../outside.txt"}),
    ("run_shell", {"command": "echo x > ~/evil.txt"}),
    ("run_shell", {"command": "echo x > $HOME/../evil.txt"}),
    ("run_shell", {"command": "ls /"}),
]


@pytest.mark.anyio
@pytest.mark.parametrize("tool,args", ATTACKS, ids=[f"{t}:{list(a.values())[0]}" for t, a in ATTACKS])
async def test_escape_attempts_are_refused(sandbox_root, registry, tool, args):
    before = _snapshot(sandbox_root)
    result = await registry.call(tool, args)
    assert not result.ok, result.content
    assert result.error_kind == "denied"
    assert _snapshot(sandbox_root) == before


@pytest.mark.anyio
async def test_symlinks_pointing_out_are_refused(sandbox_root, workspace, registry):
    (workspace / "link").symlink_to(sandbox_root / "outside.txt")
    (workspace / "dirlink").symlink_to(sandbox_root)
    before = _snapshot(sandbox_root)
    for tool, args in [
        ("read_file", {"path": "link"}),
        ("write_file", {"path": "link", "content": "overwritten"}),
        ("write_file", {"path": "dirlink/new.txt", "content": "x"}),
        ("edit_file", {"path": "link", "search": "do not", "replace": "did"}),
    ]:
        result = await registry.call(tool, args)
        assert not result.ok and result.error_kind == "denied", (tool, result.content)
    glob = await registry.call("glob", {"pattern": "**/*"})
    assert "outside" not in glob.content
    assert _snapshot(sandbox_root) == before


@pytest.mark.anyio
@pytest.mark.skipif(abi_version() < 1, reason="the kernel offers no Landlock")
async def test_landlock_stops_writes_the_static_screen_cannot_see(sandbox_root, workspace, registry):
    target = sandbox_root / "evil.txt"
    code = f"open({str(target)!r}, 'w').write('x')"
    result = await registry.call("run_python", {"code": code})
    assert "PermissionError" in result.content
    # Written via a variable the shell screen cannot resolve statically.
    result = await registry.call("run_shell", {"command": 'D=$(dirname "$PWD"); echo x > "$D/evil.txt"; echo done'})
    assert not target.exists()
    assert "Permission denied" in result.content
    # Inside the workspace writing still works.
    ok = await registry.call("run_shell", {"command": "echo fine > inside.txt && cat inside.txt"})
    assert ok.ok and "fine" in ok.content and (workspace / "inside.txt").exists()


@pytest.mark.anyio
async def test_read_only_mode_refuses_every_write_and_command(sandbox_root, workspace):
    (workspace / "a.txt").write_text("original\n")
    registry = builtin_registry(workspace, Permissions(mode="read-only"))
    before = _snapshot(sandbox_root)
    for tool, args in [
        ("write_file", {"path": "a.txt", "content": "changed"}),
        ("write_file", {"path": "new.txt", "content": "x"}),
        ("edit_file", {"path": "a.txt", "search": "original", "replace": "changed"}),
        ("run_shell", {"command": "echo x > b.txt"}),
        ("run_python", {"code": "open('b.txt', 'w').write('x')"}),
    ]:
        result = await registry.call(tool, args)
        assert not result.ok and result.error_kind == "denied" and "read-only" in result.content
    assert (workspace / "a.txt").read_text() == "original\n"
    assert sorted(p.name for p in workspace.iterdir()) == ["a.txt"]
    assert _snapshot(sandbox_root) == before
    assert (await registry.call("read_file", {"path": "a.txt"})).ok


@pytest.mark.anyio
async def test_commands_run_with_a_scrubbed_environment(workspace, registry, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = await registry.call("run_shell", {"command": "env"})
    assert "sk-secret" not in result.content
    assert f"HOME={workspace}" in result.content
    pwd = await registry.call("run_shell", {"command": "pwd"})
    assert str(workspace) in pwd.content
