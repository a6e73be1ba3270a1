"""Tool schemas as the model sees them: compact, yet every name, type and required field is there."""

from pydantic import BaseModel, ConfigDict, Field

from iclaw.tools.tool import Tool


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Where.")
    limit: int | None = Field(None, ge=1, le=10)
    default: bool = False  # a field named like a schema keyword survives


def test_schema_keeps_names_types_required_and_descriptions_only():
    tool = Tool("t", "A tool.", lambda a: "", _Args)
    assert tool.parameters() == {
        "properties": {
            "path": {"description": "Where.", "type": "string"},
            "limit": {"type": "integer"},
            "default": {"type": "boolean"},
        },
        "required": ["path"],
        "type": "object",
    }


def test_validation_still_enforces_what_the_schema_leaves_out():
    import anyio

    from iclaw.tools.registry import ToolRegistry

    registry = ToolRegistry([Tool("t", "A tool.", lambda a: "ok", _Args)])
    assert anyio.run(registry.call, "t", {"path": "x"}).ok
    for bad in ({"path": "x", "limit": 99}, {"path": "x", "extra": 1}):
        result = anyio.run(registry.call, "t", bad)
        assert not result.ok and result.error_kind == "invalid_arguments"
