"""iclaw: a terminal agent for any OpenAI-compatible endpoint.

The curated public surface is re-exported here; everything else is private. Importing
`iclaw` never imports torch, `llm` or `evals` (a test enforces it).
"""

from iclaw import errors
from iclaw.errors import (
    ContextOverflow,
    IclawError,
    ModelError,
    ModelUnreachable,
    ProfileError,
    SandboxViolation,
    SessionError,
    ToolError,
)

__all__ = list(errors.__all__)
