"""Fault injection: make call k of a tool fail with a given error, to exercise retry and replan.

`FaultSpec` is a task's `faults:` entry: `{tool, calls: [k, ...], error}` with 1-based
call numbers counted per tool over the whole run (a retry is a new call). The error's
kind (transient or permanent) is read from its text, as it would be for a real failure,
so "EIO: temporary read error" is retried and "permission denied" is not.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import anyio
from pydantic import BaseModel, ConfigDict, Field

from iclaw.errors import IclawError, ToolError
from iclaw.tools.registry import ToolRegistry
from iclaw.tools.tool import classify_message

__all__ = ["FaultSpec", "inject_faults"]


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str
    calls: list[int] = Field(min_length=1)
    error: str

    def model_post_init(self, _context: object) -> None:
        if any(k < 1 for k in self.calls):
            raise ValueError(f"fault for {self.tool}: call numbers are 1-based, got {self.calls}")


def inject_faults(registry: ToolRegistry, specs: list[FaultSpec | dict]) -> None:
    """Wrap the named tools so their listed calls fail; unknown tool names are an error."""
    by_tool: dict[str, dict[int, str]] = {}
    for spec in specs:
        spec = spec if isinstance(spec, FaultSpec) else FaultSpec.model_validate(spec)
        if spec.tool not in registry:
            raise IclawError(f"fault for unknown tool {spec.tool!r}; available: {', '.join(registry.names())}")
        for k in spec.calls:
            by_tool.setdefault(spec.tool, {})[k] = spec.error
    for name, failures in by_tool.items():
        tool = registry.get(name)
        assert tool is not None
        registry.register(replace(tool, fn=_faulty(tool.fn, failures)), replace=True)


def _faulty(fn, failures: dict[int, str]):
    count = 0

    async def wrapper(args: BaseModel) -> str:
        nonlocal count
        count += 1
        if count in failures:
            raise ToolError(failures[count], classify_message(failures[count]))
        if inspect.iscoroutinefunction(fn):
            return await fn(args)
        return await anyio.to_thread.run_sync(fn, args, abandon_on_cancel=True)

    return wrapper
