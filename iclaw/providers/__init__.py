"""Model providers, the one front door for models: the `ChatModel` protocol, the OpenAI-compatible client, the scripted model."""

from iclaw.providers.openai import OpenAIChatModel, normalize_base_url
from iclaw.providers.retry import RetryPolicy
from iclaw.providers.scripted import ScriptedModel
from iclaw.providers.text_calls import ParsedText, parse_text_tool_calls
from iclaw.providers.turn import AssistantTurn, ChatModel, TextSink, ToolCall

__all__ = [
    "AssistantTurn",
    "ChatModel",
    "OpenAIChatModel",
    "ParsedText",
    "RetryPolicy",
    "ScriptedModel",
    "TextSink",
    "ToolCall",
    "normalize_base_url",
    "parse_text_tool_calls",
]
