"""Start `llm serve` for a checkpoint, wait until it is healthy, stop it afterwards.

`LlmServer` runs `<python> -m llm serve --model PATH --port PORT` as a subprocess on a
free local port (its own process group, output to a log file), polls `GET /health` until
it answers 200, and on `stop()` sends SIGTERM to the group, then SIGKILL if it lingers.
A server that exits or never becomes healthy is a `HarnessError` carrying the tail of its
log: a model that cannot be served says nothing about the model.

The command prefix is injectable so the start/wait/stop logic can be tested against a
stand-in process; `evals` never imports `llm` (the server is a separate process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from evals.errors import HarnessError

__all__ = ["LlmServer", "free_port", "LLM_SERVE"]

LLM_SERVE = [sys.executable, "-m", "llm", "serve"]
"""The real server command; `--model PATH --port N` are appended."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LlmServer:
    """One `llm serve` subprocess; use `async with` or start()/stop()."""

    def __init__(
        self,
        model_path: Path | str,
        log_path: Path,
        *,
        command: list[str] | None = None,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 300.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.model_path = str(model_path)
        self.log_path = Path(log_path)
        self.command = list(command or LLM_SERVE)
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://{self.host}:{self.port}/v1"

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}/health"

    async def __aenter__(self) -> LlmServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.port = free_port(self.host)
        argv = [*self.command, "--model", self.model_path, "--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            except OSError as exc:
                raise HarnessError(f"cannot start the model server ({' '.join(argv)}): {exc}") from exc
        try:
            await self._wait_healthy()
        except BaseException:
            await self.stop()
            raise

    async def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise HarnessError(
                        f"model server for {self.model_path} exited with code {code} before it was healthy; "
                        f"log {self.log_path}: {self._log_tail()}"
                    )
                try:
                    if (await client.get(self.health_url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"model server for {self.model_path} not healthy at {self.health_url} after "
                        f"{self.startup_timeout_s:g}s; log {self.log_path}: {self._log_tail()}"
                    )
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL after `stop_timeout_s`; idempotent."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)

    def _log_tail(self, chars: int = 400) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip()[-chars:].splitlines()) or "(empty log)"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
