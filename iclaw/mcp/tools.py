"""An MCP server's tool as an iclaw `Tool`: namespaced, schema-checked, behind the permissions.

- The name is `server.tool`, so two servers (or a server and a built-in) never collide.
- The tool's `inputSchema` is shown to the model as given and checked as JSON Schema when
  the server lists it; every call's arguments are validated against it before they leave.
- Annotations map onto iclaw's flags: `readOnlyHint: true` makes the tool read-only and
  parallel-safe (calls of one turn overlap) and needs no approval; any other tool is
  serialised and, in `ask` mode, needs approval, worded by `destructiveHint` (which MCP
  defaults to true for a tool that is not read-only).

Knows nothing about connections: it is handed an async `call(tool, arguments) -> result`.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, ConfigDict, model_validator

from iclaw.errors import IclawError, ToolError
from iclaw.tools.permissions import Permissions
from iclaw.tools.tool import Tool, classify_message, compact_schema

__all__ = ["SEPARATOR", "ToolSchemaError", "arguments_model", "mcp_tool", "result_text", "tool_flags"]

SEPARATOR = "."

Caller = Callable[[str, dict], Awaitable[Any]]


class ToolSchemaError(IclawError):
    """A server listed a tool whose inputSchema is not a usable JSON Schema."""


def arguments_model(name: str, schema: Any) -> type[BaseModel]:
    """A pydantic model that accepts exactly what `schema` accepts (checked by jsonschema)."""
    from jsonschema import SchemaError  # imported here: `iclaw --help` need not load it
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ToolSchemaError("it must be a JSON Schema object with type: object")
    try:
        cls = validator_for(schema)
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise ToolSchemaError(f"not valid JSON Schema at {where}: {exc.message}") from exc
    validator = cls(schema)

    class Arguments(BaseModel):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _check(cls, data: Any) -> Any:
            errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
            if errors:
                raise ValueError("; ".join(_where(e) + e.message for e in errors[:3]))
            return data

    Arguments.__name__ = Arguments.__qualname__ = f"{name}_arguments"
    return Arguments


def tool_flags(annotations: Any) -> tuple[bool, bool]:
    """(read_only, destructive) from MCP tool annotations (hints; MCP's defaults when absent)."""
    read_only = bool(getattr(annotations, "read_only_hint", None))
    destructive = not read_only and getattr(annotations, "destructive_hint", None) is not False
    return read_only, destructive


def result_text(result: Any) -> str:
    """The text a model reads from a CallToolResult (non-text content named, not dumped)."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{kind} content ({getattr(block, 'mime_type', '?')}) not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def mcp_tool(server: str, listed: Any, call: Caller, permissions: Permissions) -> Tool:
    """The iclaw Tool for one listed MCP tool of `server`; raises ToolSchemaError for a bad schema."""
    name = f"{server}{SEPARATOR}{listed.name}"
    args_model = arguments_model(name, listed.input_schema)
    read_only, destructive = tool_flags(listed.annotations)
    if read_only:
        wording = f"MCP server {server!r} marks {listed.name} read-only"
    elif destructive:
        wording = f"MCP server {server!r} says {listed.name} may delete or overwrite data (destructive)"
    else:
        wording = f"MCP server {server!r} says {listed.name} changes things but deletes nothing"

    async def run(args: BaseModel) -> str:
        arguments = args.model_dump()
        subject = json.dumps(arguments, ensure_ascii=False)[:300]
        action = "read" if read_only else ("write" if destructive else "exec")
        await permissions.check(name, action, subject, preview=f"{wording}\narguments: {subject}")
        result = await call(listed.name, arguments)
        text = result_text(result)
        if result.is_error:
            raise ToolError(text or f"{name} failed", kind=classify_message(text))
        return text

    description = (listed.description or listed.title or listed.name).strip()
    return Tool(
        name,
        f"{description} (MCP server {server})",
        run,
        args_model,
        read_only=read_only,
        parallel_safe=read_only,
        parameters_schema=compact_schema(listed.input_schema),  # what the model sees; the full schema validates
    )


def _where(error: Any) -> str:
    return "/".join(map(str, error.path)) + ": " if error.path else ""
