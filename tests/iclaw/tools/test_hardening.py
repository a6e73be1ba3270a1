"""The sandbox's switches and limits: network allow, the unsafe opt-in, rlimits, paging, RE2, secrets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from iclaw.profile import load_profile
from iclaw.secrets import take_secret
from iclaw.tools import Permissions, builtin_registry
from iclaw.tools.landlock import abi_version
from iclaw.tools.policy import ResourceLimits, SandboxPolicy
from iclaw.tools.reading import read_lines
from iclaw.tools.workspace import Workspace

needs_landlock = pytest.mark.skipif(abi_version() < 4, reason="needs Landlock ABI >= 4 (TCP rules)")


def _registry(workspace: Path, **policy) -> object:
    return builtin_registry(workspace, Permissions(mode="auto"), policy=SandboxPolicy(**policy))


def test_profiles_deny_the_network_and_carry_limits_by_default():
    for name in ("v1", "v2"):
        perms = load_profile(name).permissions
        assert perms.network == "deny" and perms.unsafe_shell is False
        assert perms.limits == ResourceLimits()
    allowed = load_profile("v2", ["permissions.network=allow", "permissions.limits.cpu_s=5"]).permissions.sandbox()
    assert allowed.network == "allow" and allowed.limits.cpu_s == 5


@pytest.mark.anyio
@needs_landlock
@pytest.mark.parametrize("network", ["deny", "allow"])
async def test_the_network_switch_opens_tcp_only_when_allowed(workspace, network):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected', 6 * 7)"
    try:
        result = await _registry(workspace, network=network).call("run_python", {"code": code})
    finally:
        listener.close()
    assert ("connected 42" in result.content) == (network == "allow"), result.content


@pytest.mark.anyio
async def test_without_landlock_commands_run_only_with_the_unsafe_opt_in(workspace):
    refused = builtin_registry(workspace, Permissions(), use_landlock=False)
    result = await refused.call("run_shell", {"command": "echo hi"})
    assert result.error_kind == "denied" and "--unsafe-shell" in result.content and "\n" not in result.content
    assert refused.sandbox == "commands refused (no Landlock)"
    unsafe = builtin_registry(workspace, Permissions(), policy=SandboxPolicy(unsafe_shell=True), use_landlock=False)
    result = await unsafe.call("run_shell", {"command": "echo hi"})
    assert result.ok and "hi" in result.content and "unconfined" in unsafe.sandbox


@pytest.mark.anyio
async def test_resource_limits_bind_every_process(workspace):
    registry = _registry(workspace, limits=ResourceLimits(memory_mb=256, cpu_s=1))
    big = await registry.call("run_python", {"code": "x = bytearray(1024 * 2**20)"})
    assert "MemoryError" in big.content
    shown = await registry.call("run_shell", {"command": "echo cpu=$(ulimit -t) as=$(ulimit -v) core=$(ulimit -c)"})
    assert f"cpu=1 as={256 * 1024} core=0" in shown.content


def test_large_files_are_paged_not_read_whole(tmp_path):
    ws = Workspace(tmp_path)
    path = tmp_path / "log.txt"
    path.write_text("".join(f"line {i}\n" for i in range(1, 5001)))
    page = read_lines(ws, path, 2000, 2002, max_chars=10_000, max_bytes=1000)
    assert page.startswith("line 2000\nline 2001\nline 2002\n") and "too large to read whole" in page
    head = read_lines(ws, path, 1, None, max_chars=50, max_bytes=1000)
    assert head.startswith("line 1\n") and head.count("line") < 20


@pytest.mark.anyio
async def test_grep_is_linear_time_and_names_what_re2_lacks(workspace, registry):
    (workspace / "a.txt").write_text("ab ab\n" + "a" * 50_000 + "\n")
    back = await registry.call("grep", {"pattern": r"(ab) \1"})
    assert back.error_kind == "invalid_arguments" and "RE2" in back.content
    assert (await registry.call("grep", {"pattern": r"(a|aa)*c"})).content.startswith("no matches")
    assert (await registry.call("grep", {"pattern": "AB", "ignore_case": True})).content == "a.txt:1: ab ab"


def test_api_keys_leave_the_environment(monkeypatch):
    monkeypatch.setenv("ICLAW_TEST_KEY", "sk-hidden-42")
    assert take_secret("ICLAW_TEST_KEY") == "sk-hidden-42"
    assert "ICLAW_TEST_KEY" not in os.environ
    assert take_secret("ICLAW_TEST_KEY") == "sk-hidden-42"  # remembered in memory
    assert take_secret("ICLAW_NEVER_SET") is None
