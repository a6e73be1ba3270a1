"""`ToolRegistry`: the tools an agent may call, their schemas, and one safe `call`.

`call` validates the arguments against the tool's pydantic model, runs the tool (async
functions awaited, sync ones in a worker thread) and always returns a `ToolResult`: an
unknown tool, bad arguments, a refused path or a crash become an observation for the
model, never an exception that ends the session. It knows nothing about timeouts,
retries or concurrency (the executor's job).
"""

from __future__ import annotations

import inspect
import json
import time
from typing import Iterator

import anyio
from pydantic import ValidationError

from iclaw.errors import IclawError, ToolError
from iclaw.tools.permissions import user_wait
from iclaw.tools.tool import Tool, ToolResult, classify_exception

__all__ = ["ToolRegistry"]


class ToolRegistry:
    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        # Set by builtin_registry; shown by the terminal and recorded in trajectories.
        self.sandbox = "none"
        self.workspace = None
        self.runner = None  # the ProcessRunner of the built-ins (MCP servers started in the sandbox use it)
        self.mcp = None  # the McpHub whose tools were added, if any
        self.permissions = None
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool, replace: bool = False) -> None:
        if tool.name in self._tools and not replace:
            raise IclawError(f"a tool named {tool.name!r} is already registered; pick another name")
        self._tools[tool.name] = tool

    def unregister(self, name: str) -> None:
        """Remove a tool (an MCP server that stopped); may be called from another thread."""
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))  # a copy: MCP tools may leave while a caller iterates

    def __len__(self) -> int:
        return len(self._tools)

    def schemas(self) -> list[dict]:
        """The OpenAI `tools` list."""
        return [tool.schema() for tool in self]

    async def call(self, name: str, args: dict) -> ToolResult:
        """Run one call; its duration leaves out the time spent waiting for the user's approval."""
        started = time.perf_counter()
        with user_wait() as wait:
            result = await self._call(name, args)
        result.duration_s = max(0.0, time.perf_counter() - started - wait.seconds)
        return result

    async def _call(self, name: str, args: dict) -> ToolResult:
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult(
                ok=False,
                content=f"unknown tool {name!r}; available tools: {', '.join(self.names()) or '(none)'}",
                error_kind="invalid_arguments",
            )
        try:
            parsed = tool.args_model.model_validate(args if isinstance(args, dict) else {})
        except ValidationError as exc:
            return ToolResult(ok=False, content=invalid_arguments_message(tool, exc), error_kind="invalid_arguments")
        try:
            if inspect.iscoroutinefunction(tool.fn):
                out = await tool.fn(parsed)
            else:
                out = await anyio.to_thread.run_sync(tool.fn, parsed, abandon_on_cancel=True)
        except ToolError as exc:
            return ToolResult(ok=False, content=str(exc), error_kind=exc.kind)
        except Exception as exc:  # a crashing tool is an observation, never the end of the session
            return ToolResult(ok=False, content=f"{type(exc).__name__}: {exc}", error_kind=classify_exception(exc))
        return ToolResult(ok=True, content=str(out))


def invalid_arguments_message(tool: Tool, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}" for err in exc.errors()
    )
    schema = json.dumps(tool.parameters(), ensure_ascii=False)
    return f"invalid arguments for {tool.name}: {problems}. Call it again with arguments matching this schema: {schema}"
