"""The model side of iclaw in one import: `from iclaw.model import OpenAIChatModel, ScriptedModel, ...`.

The implementations live in `iclaw.providers`; this module only re-exports them.
"""

from iclaw.providers import (
    AssistantTurn,
    ChatModel,
    OpenAIChatModel,
    RetryPolicy,
    ScriptedModel,
    ToolCall,
    parse_text_tool_calls,
)

__all__ = [
    "AssistantTurn",
    "ChatModel",
    "OpenAIChatModel",
    "RetryPolicy",
    "ScriptedModel",
    "ToolCall",
    "parse_text_tool_calls",
]
