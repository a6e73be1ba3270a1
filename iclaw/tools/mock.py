"""Task-defined mock tools: simulated APIs with a schema, a latency and canned answers.

A `MockToolSpec` (the `mock_tools:` entries of a task YAML) becomes a real `Tool`: its
JSON schema is shown to the model as given, arguments are validated against a pydantic
model built from that schema, and the answer is looked up by the value of the first
required parameter (`responses`), else `default`. Latency is an `anyio.sleep`, so mock
calls overlap exactly like real network calls would.
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, create_model

from iclaw.tools.registry import ToolRegistry
from iclaw.tools.tool import Tool

__all__ = ["MockToolSpec", "add_mock_tools", "model_from_schema"]

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


class MockToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    description: str = ""
    parameters: dict = Field(default_factory=lambda: {"type": "object", "properties": {}})
    latency_s: float = Field(0.0, ge=0)
    responses: dict[str, str] = Field(default_factory=dict)
    default: str = ""

    def key_parameter(self) -> str | None:
        required = self.parameters.get("required") or []
        props = list((self.parameters.get("properties") or {}).keys())
        return required[0] if required else (props[0] if props else None)


def model_from_schema(name: str, schema: dict) -> type[BaseModel]:
    """A pydantic model validating a flat JSON-schema object (unknown keys are ignored)."""
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for i, (prop, spec) in enumerate((schema.get("properties") or {}).items()):
        py_type = _JSON_TYPES.get((spec or {}).get("type"), Any)
        # Field names are positional so JSON names like "schema" or "model_config" cannot clash.
        if prop in required:
            fields[f"p{i}"] = (py_type, Field(alias=prop))
        else:
            fields[f"p{i}"] = (py_type | None, Field(None, alias=prop))
    return create_model(f"{name}_args", __config__=ConfigDict(extra="ignore", populate_by_name=False), **fields)


def mock_tool(spec: MockToolSpec) -> Tool:
    key = spec.key_parameter()

    async def call(args: BaseModel) -> str:
        if spec.latency_s:
            await anyio.sleep(spec.latency_s)
        values = args.model_dump(by_alias=True)
        if key is None or values.get(key) is None:
            return spec.default
        return spec.responses.get(str(values[key]), spec.default)

    return Tool(
        spec.name,
        spec.description or f"{spec.name} (simulated API)",
        call,
        model_from_schema(spec.name, spec.parameters),
        parameters_schema=spec.parameters,
    )


def add_mock_tools(registry: ToolRegistry, specs: list[MockToolSpec | dict]) -> None:
    """Register each spec as a tool; a mock may replace a built-in of the same name."""
    for spec in specs:
        spec = spec if isinstance(spec, MockToolSpec) else MockToolSpec.model_validate(spec)
        registry.register(mock_tool(spec), replace=True)
