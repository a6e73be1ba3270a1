"""How a task names files: workspace-relative paths and file contents.

A file's content is either inline text or `{from: PATH}`, a file or directory relative to
the task file. The `from` path is resolved and checked while the task is validated (the
task loader passes the task's directory as pydantic validation context), so a missing
fixture is reported as a schema error with the task file and field named.

This module knows nothing about agents or checks; it only places files.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
)

__all__ = ["RelPath", "FromFile", "FileContent", "place_files"]


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or value.startswith("~"):
        raise ValueError(f"{value!r} must be a relative path inside the workspace (no '..', not absolute)")
    return path.as_posix()


RelPath = Annotated[str, AfterValidator(_relative_path)]
"""A normalised relative path that cannot leave the directory it is joined to."""


class FromFile(BaseModel):
    """Content copied from a fixture file or directory, relative to the task file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The resolved fixture path (None when validated without a base directory)."""
        return self._source

    def model_post_init(self, context: object) -> None:
        base = context.get("base_dir") if isinstance(context, dict) else None
        if base is not None:
            self._source = (Path(base) / self.from_).resolve()

    @field_validator("from_")
    @classmethod
    def _exists(cls, value: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base_dir")
        if base is not None and not (Path(base) / value).exists():
            raise ValueError(f"fixture {value!r} not found next to the task file ({Path(base) / value})")
        return value


def _content_kind(value: object) -> str:
    return "<text>" if isinstance(value, str) else "<from>"


FileContent = Annotated[
    Annotated[str, Tag("<text>")] | Annotated[FromFile, Tag("<from>")],
    Discriminator(_content_kind),
]
"""Inline text, or `{from: PATH}` (tagged so a bad entry reports one error, not two)."""


def place_files(files: dict[str, FileContent], dest: Path) -> None:
    """Write each file of `files` under `dest`, creating parent directories.

    A `from:` directory is copied recursively to the given path.
    """
    for rel, content in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
            continue
        assert content.source is not None, "FromFile validated without base_dir context"
        if content.source.is_dir():
            shutil.copytree(content.source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(content.source, target)
