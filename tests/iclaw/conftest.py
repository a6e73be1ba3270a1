"""Shared fixtures for the iclaw tests: an isolated home, a workspace, a tool registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from iclaw.tools import Permissions, builtin_registry


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Config, sessions and history go to a temp dir, never to the real home."""
    home = tmp_path_factory.mktemp("iclaw-home")
    monkeypatch.setenv("ICLAW_HOME", str(home / "data"))
    monkeypatch.setenv("ICLAW_CONFIG_DIR", str(home / "config"))
    return home


@pytest.fixture
def sandbox_root(tmp_path) -> Path:
    """A parent directory with the workspace inside it, so tests can check nothing outside changed."""
    (tmp_path / "workspace").mkdir()
    (tmp_path / "outside.txt").write_text("do not touch\n")
    return tmp_path


@pytest.fixture
def workspace(sandbox_root) -> Path:
    return sandbox_root / "workspace"


@pytest.fixture
def registry(workspace):
    return builtin_registry(workspace, Permissions(mode="auto"))
