"""`McpHub`: the MCP servers of one session — started, listed, called, watched, stopped.

The SDK's clients are async context managers that must live as long as the session,
while iclaw builds its tools synchronously and may run several event loops one after the
other (the terminal, `iclaw run`, an eval attempt's own loop). So the hub runs every
client on one private event loop in a daemon thread, behind an anyio `BlockingPortal`;
a tool call from any loop hands the request to that loop and waits for it (a timeout or
a cancel on the caller's side cancels the request).

A server that cannot start, or whose listing is unusable (a tool schema that is not JSON
Schema), is reported in one line and left out; one that dies later (its process exits,
its connection closes) is reported in one line and its tools leave every registry they
were added to. The session always goes on.
"""

from __future__ import annotations

import atexit
import queue
import sys
import threading
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import anyio
from anyio.from_thread import BlockingPortal

from iclaw.config import data_dir
from iclaw.errors import IclawError, ToolError
from iclaw.mcp.config import McpServerSpec, ServerEntry, load_servers
from iclaw.mcp.tools import SEPARATOR, ToolSchemaError, arguments_model, mcp_tool
from iclaw.tools.builtin import BUILTIN_TOOLS
from iclaw.tools.permissions import Permissions
from iclaw.tools.process import ProcessRunner
from iclaw.tools.registry import ToolRegistry
from iclaw.tools.tool import classify_message

__all__ = ["McpHub", "ServerState", "open_hub", "start_task_servers"]

_STOP_TIMEOUT_S = 10.0


@dataclass
class ServerState:
    entry: ServerEntry
    status: str = "starting"  # starting | running | failed | stopped
    error: str | None = None
    listed: list[Any] = field(default_factory=list)  # the SDK's Tool objects
    log_path: Path | None = None
    client: Any = None
    stop: Any = None  # anyio.Event on the hub's loop
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.entry.name


class McpHub:
    def __init__(
        self,
        entries: list[ServerEntry],
        workspace: Path,
        *,
        runner: ProcessRunner | None = None,
        problems: list[str] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.workspace = Path(workspace)
        self.runner = runner
        self.states = [ServerState(e) for e in entries]
        self.problems: list[str] = []
        self.on_notice = on_notice or _print_notice
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._attached: list[tuple[ToolRegistry, list[str]]] = []
        for problem in problems or []:
            self._report(problem)

    # ---- lifetime --------------------------------------------------------------------

    def start(self) -> "McpHub":
        """Connect every server (concurrently) and wait until each is up or has failed."""
        if not self.states or self._portal is not None:
            return self
        self._portal, self._thread = _start_portal()
        atexit.register(self.close)
        serving = [(state, self._portal.start_task_soon(self._serve, state)) for state in self.states]
        for state, future in serving:
            timeout = state.entry.spec.startup_timeout_s
            if not state.ready.wait(timeout):
                self._fail(state, f"it did not answer within startup_timeout_s={timeout:g}s")
                future.cancel()
        return self

    def close(self) -> None:
        """Stop every server (stdio processes are asked to exit, then killed) and the hub's loop."""
        portal, self._portal = self._portal, None
        if portal is None:
            return
        for state in self.states:
            if state.status in ("running", "starting"):
                state.status = "stopped"  # first, so the closing connection is not reported as a death
            if state.stop is not None:
                portal.call(state.stop.set)
        try:
            portal.call(_wait_stopped, self.states)
        finally:
            portal.call(portal.stop)
        atexit.unregister(self.close)

    def __enter__(self) -> "McpHub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def running(self) -> list[ServerState]:
        return [s for s in self.states if s.status == "running"]

    # ---- tools -----------------------------------------------------------------------

    def attach(self, registry: ToolRegistry, permissions: Permissions) -> None:
        """Register the tools of every running server in `registry`, behind `permissions`."""
        names: list[str] = []
        for state in self.running():
            for listed in state.listed:
                tool = mcp_tool(state.name, listed, self._caller(state), permissions)
                if tool.name in registry:
                    self._report(f"{state.entry.source}: server {state.name!r}: tool {listed.name!r} clashes with the "
                                 f"tool {tool.name} already registered; rename one (iclaw goes on without it)")
                    continue
                registry.register(tool)
                names.append(tool.name)
        with self._lock:
            self._attached.append((registry, names))

    def tool_names(self, state: ServerState) -> list[str]:
        return [f"{state.name}{SEPARATOR}{t.name}" for t in state.listed]

    def _caller(self, state: ServerState):
        async def call(tool: str, arguments: dict) -> Any:
            if state.status != "running" or self._portal is None:
                raise ToolError(f"MCP server {state.name!r} is not running ({state.error or 'stopped'}); "
                                "its tools are gone, use another way", kind="permanent")
            future = self._portal.start_task_soon(state.client.call_tool, tool, arguments)
            try:
                return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
            except anyio.get_cancelled_exc_class():
                future.cancel()  # the executor's timeout (or Ctrl-C) cancels the request too
                raise
            except Exception as exc:
                message = _describe(exc)
                if _is_disconnect(exc):
                    self._fail(state, f"stopped during a call to {tool}: {message}")
                    raise ToolError(f"MCP server {state.name!r} stopped: {message}; its tools are gone",
                                    kind="permanent") from exc
                raise ToolError(f"MCP server {state.name!r}: {message}", kind=classify_message(message)) from exc

        return call

    # ---- the hub's loop --------------------------------------------------------------

    async def _serve(self, state: ServerState) -> None:
        from mcp import Client

        state.stop = anyio.Event()
        try:
            async with AsyncExitStack() as stack:
                transport = await self._transport(state, stack)
                client = await stack.enter_async_context(Client(transport))
                state.listed = await _list_tools(client)
                for listed in state.listed:
                    try:
                        arguments_model(listed.name, listed.input_schema)
                    except ToolSchemaError as exc:
                        raise IclawError(f"tool {listed.name!r}: field inputSchema: {exc}") from exc
                state.client = client
                state.status = "running"
                state.ready.set()
                await state.stop.wait()
        except Exception as exc:  # a server is never worth the session: report, drop, go on
            if state.status != "stopped":
                self._fail(state, _describe(exc) + _stderr_tail(state))
        finally:
            state.client = None
            state.ready.set()

    async def _transport(self, state: ServerState, stack: AsyncExitStack):
        spec = state.entry.spec
        if spec.transport == "http":
            from mcp.client.streamable_http import streamable_http_client

            http_client = None
            if spec.headers:
                import httpx2

                http_client = await stack.enter_async_context(httpx2.AsyncClient(headers=spec.headers))
            return _watched(streamable_http_client(spec.url, http_client=http_client), lambda: self._closed(state))
        from mcp.client.stdio import StdioServerParameters, stdio_client

        argv = [spec.command or "", *spec.args]
        env = dict(spec.env)
        if spec.sandbox:
            if self.runner is None:
                raise IclawError("sandbox: true needs the workspace's sandbox, which this session has not built")
            self.runner.check_allowed(f"the MCP server {state.name!r}")
            argv = self.runner.launch_argv(argv)
            env = self.runner.environment() | env
        # A task's server logs into its private TMPDIR (attempts run side by side); a user's into ICLAW_HOME.
        log_dir = self.runner.tmpdir if spec.sandbox and self.runner is not None else data_dir() / "mcp"
        state.log_path = log_dir / f"{state.name}.log"
        state.log_path.parent.mkdir(parents=True, exist_ok=True)
        errlog = stack.enter_context(open(state.log_path, "w"))
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env or None,
                                       cwd=str(Path(self.workspace, spec.cwd or ".")))
        return _watched(stdio_client(params, errlog=errlog), lambda: self._closed(state))

    def _closed(self, state: ServerState) -> None:
        if state.status == "running":
            self._fail(state, "the server closed the connection (did its process exit?)" + _stderr_tail(state))

    # ---- reporting -------------------------------------------------------------------

    def _fail(self, state: ServerState, reason: str) -> None:
        with self._lock:
            was = state.status
            if was in ("failed", "stopped"):
                return
            state.status, state.error = "failed", reason
            gone = set(self.tool_names(state))
            for registry, names in self._attached:
                for name in [n for n in names if n in gone]:
                    registry.unregister(name)
        if state.stop is not None and self._portal is not None:
            if threading.current_thread() is self._thread:
                state.stop.set()
            else:
                self._portal.start_task_soon(_set, state.stop)
        if was == "running":
            self._report(f"MCP server {state.name!r} stopped: {reason}; its tools are gone, the session goes on")
        else:
            self._report(f"{state.entry.source}: server {state.name!r}: cannot start: {reason}; "
                         "iclaw goes on without it")
        state.ready.set()

    def _report(self, line: str) -> None:
        self.problems.append(line)
        self.on_notice(line)


def open_hub(
    workspace: Path,
    *,
    runner: ProcessRunner | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> McpHub:
    """A hub for the servers declared in the user config and the workspace (not started yet)."""
    entries, problems = load_servers(workspace, reserved=BUILTIN_TOOLS)
    return McpHub(entries, workspace, runner=runner, problems=problems, on_notice=on_notice)


def start_task_servers(
    registry: ToolRegistry, permissions: Permissions, servers: dict[str, McpServerSpec], source: str
) -> McpHub:
    """Start a task's servers inside its sandbox and add their tools; IclawError if any fails.

    Every command goes through the registry's sandbox launcher (`sandbox: true` is forced);
    the caller closes the hub when the attempt ends."""
    entries = [ServerEntry(name, spec.model_copy(update={"sandbox": True}), source) for name, spec in servers.items()]
    hub = McpHub(entries, registry.workspace.root, runner=registry.runner, on_notice=lambda line: None).start()
    if hub.problems:
        hub.close()
        raise IclawError(f"mcp_servers: {hub.problems[0]}")
    hub.attach(registry, permissions)
    registry.mcp = hub
    return hub


async def _set(event: Any) -> None:
    event.set()


def _print_notice(line: str) -> None:
    print(f"iclaw: mcp: {line}", file=sys.stderr)


def _start_portal() -> tuple[BlockingPortal, threading.Thread]:
    handed: queue.Queue = queue.Queue()

    def target() -> None:
        async def main() -> None:
            async with BlockingPortal() as portal:
                handed.put(portal)
                await portal.sleep_until_stopped()

        anyio.run(main)

    thread = threading.Thread(target=target, name="iclaw-mcp", daemon=True)
    thread.start()
    return handed.get(), thread


async def _wait_stopped(states: list[ServerState]) -> None:
    with anyio.move_on_after(_STOP_TIMEOUT_S):
        while any(s.client is not None for s in states):
            await anyio.sleep(0.02)


async def _list_tools(client: Any) -> list[Any]:
    tools, cursor = [], None
    for _ in range(100):  # a paginator that never ends cannot hang the start
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


@asynccontextmanager
async def _watched(transport, on_closed: Callable[[], None]):
    """The transport's streams, with `on_closed` called when the server's side ends by itself."""
    async with transport as (read, write):
        send, receive = anyio.create_memory_object_stream(0)

        async def forward() -> None:
            async with send:
                async for message in read:
                    await send.send(message)
            on_closed()

        async with anyio.create_task_group() as group:
            group.start_soon(forward)
            try:
                yield receive, write
            finally:
                group.cancel_scope.cancel()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException) -> str:
    leaf = _leaves(exc)[0]
    if isinstance(leaf, FileNotFoundError):
        return f"command not found: {leaf.filename or leaf}"
    text = str(leaf).strip() or type(leaf).__name__
    return text.splitlines()[0][:300]


def _is_disconnect(exc: BaseException) -> bool:
    leaf = _leaves(exc)[0]
    text = str(leaf).lower()
    return "connection closed" in text or isinstance(leaf, (ConnectionError, anyio.ClosedResourceError,
                                                            anyio.BrokenResourceError, EOFError))


def _stderr_tail(state: ServerState) -> str:
    if state.log_path is None or not state.log_path.exists():
        return ""
    lines = [line.strip() for line in state.log_path.read_text(errors="replace").splitlines() if line.strip()]
    return f" (its stderr ends: {lines[-1][:200]}; log: {state.log_path})" if lines else ""
