"""`llm.chat_template`'s ChatML layout as a Jinja chat template, for `tokenizer_config.json`.

Rendered by transformers' `apply_chat_template` (and the servers that use it), the template
gives the same text as `render_chat_text`: the system turn (the chat's own, else the
checkpoint's default system prompt) with the `# Tools` block appended, assistant turns with
their `<tool_call>` blocks, consecutive tool results in one `tool` turn. It relies on
transformers' `tojson` (raw UTF-8, Python's default separators) for the JSON pieces.

One difference: tool-call arguments given as a JSON *string* (OpenAI's wire form) are
inserted as they are, where our renderer re-serializes them; give them as an object for
identical text.

The default system prompt is stored as `{%- set default_system = "<JSON string>" -%}` so
`llm import hf` can read it back exactly.
"""

from __future__ import annotations

import json
import re

from llm.chat_template import IM_END, IM_START, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, TOOLS_INSTRUCTION

__all__ = ["chatml_jinja", "DEFAULT_SYSTEM_SET"]

# The template line holding the default system prompt: a JSON string (one line) or `none`.
DEFAULT_SYSTEM_SET = re.compile(r"^\{%- set default_system = (.*) -%\}$", re.M)

# `\n` inside the Jinja string literals below is Jinja's escape for a newline. @NAME@ marks
# the places filled in from llm.chat_template's constants.
_TEMPLATE = r"""{%- set default_system = @DEFAULT_SYSTEM@ -%}
{%- macro text(m) -%}
{%- if m.content is string -%}{{- m.content -}}
{%- elif m.content -%}{%- for part in m.content -%}{{- part.text -}}{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- macro call_json(c) -%}
{%- set f = c.function if c.function is defined else c -%}
{%- set args = f.arguments if f.arguments is defined else {} -%}
{%- if args is string -%}{%- set args_json = args if args.strip() else '{}' -%}
{%- else -%}{%- set args_json = args | tojson -%}
{%- endif -%}
{{- '{"name": ' ~ (f.name | tojson) ~ ', "arguments": ' ~ args_json ~ '}' -}}
{%- endmacro -%}
{%- set ns = namespace(system=none, first=0, body='', name=none) -%}
{%- if messages[0].role == 'system' -%}
{%- set ns.system = text(messages[0]) -%}
{%- set ns.first = 1 -%}
{%- else -%}
{%- set ns.system = default_system -%}
{%- endif -%}
{%- if tools -%}
{%- set ns.body = '# Tools\n<tools>' -%}
{%- for t in tools -%}
{%- set f = t.function if t.function is defined else t -%}
{%- set ns.body = ns.body ~ '\n{"name": ' ~ (f.name | tojson)
    ~ ((', "description": ' ~ (f.description | tojson)) if f.description is defined else '')
    ~ ((', "parameters": ' ~ (f.parameters | tojson)) if f.parameters is defined else '') ~ '}' -%}
{%- endfor -%}
{%- set ns.body = ns.body ~ '\n</tools>\n' ~ @TOOLS_INSTRUCTION@ -%}
{%- set ns.system = (ns.system ~ '\n\n' ~ ns.body) if ns.system else ns.body -%}
{%- endif -%}
{%- if ns.system is not none -%}{{- '@IM_START@system\n' ~ ns.system ~ '@IM_END@\n' -}}{%- endif -%}
{%- for m in messages[ns.first:] -%}
{%- set i = ns.first + loop.index0 -%}
{%- if m.role == 'assistant' -%}
{%- set ns.body = text(m) -%}
{%- for c in (m.tool_calls or []) -%}
{%- set ns.body = ((ns.body ~ '\n') if ns.body else '') ~ '@TOOL_CALL_OPEN@' ~ call_json(c) ~ '@TOOL_CALL_CLOSE@' -%}
{%- endfor -%}
{{- '@IM_START@assistant\n' ~ ns.body ~ '@IM_END@\n' -}}
{%- elif m.role == 'tool' -%}
{%- set ns.name = m.name if m.name else none -%}
{%- if not ns.name -%}
{%- for p in messages[:i] if p.role == 'assistant' -%}
{%- for c in (p.tool_calls or []) if c.id is defined and c.id == m.tool_call_id -%}
{%- set ns.name = (c.function if c.function is defined else c).name -%}
{%- endfor -%}
{%- endfor -%}
{%- endif -%}
{%- if not ns.name -%}{{- raise_exception('tool message ' ~ i ~ ' has no name and its tool_call_id matches no earlier tool call') -}}{%- endif -%}
{{- ('@IM_START@tool\n' if loop.first or messages[i - 1].role != 'tool' else '\n')
    ~ '<tool_response>{"name": ' ~ (ns.name | tojson) ~ ', "content": ' ~ (text(m) | tojson) ~ '}</tool_response>'
    ~ ('@IM_END@\n' if loop.last or messages[i + 1].role != 'tool' else '') -}}
{%- else -%}
{{- '@IM_START@' ~ m.role ~ '\n' ~ text(m) ~ '@IM_END@\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '@IM_START@assistant\n' -}}{%- endif -%}
"""


def chatml_jinja(default_system: str | None) -> str:
    """The Jinja source; `default_system` is the system prompt used when a chat has none (None = no system turn)."""
    fills = {
        "@TOOLS_INSTRUCTION@": json.dumps(TOOLS_INSTRUCTION, ensure_ascii=False),
        "@IM_START@": IM_START,
        "@IM_END@": IM_END,
        "@TOOL_CALL_OPEN@": TOOL_CALL_OPEN,
        "@TOOL_CALL_CLOSE@": TOOL_CALL_CLOSE,
        # Last, so the user's prompt text is never searched for placeholders.
        "@DEFAULT_SYSTEM@": "none" if default_system is None else json.dumps(default_system, ensure_ascii=False),
    }
    out = _TEMPLATE
    for key, value in fills.items():
        out = out.replace(key, value)
    return out
