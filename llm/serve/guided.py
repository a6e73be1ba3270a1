"""The grammar a chat request asks for (guided decoding), compiled for the served tokenizer.

- `tool_choice: "required"`: the reply is one or more tool-call blocks (exactly one when
  `parallel_tool_calls` is false), each naming one of the request's tools, with arguments
  that follow that tool's `parameters` schema;
- a named function: one call of that function;
- `"auto"` on a server started with `--guided-tools`: free text, but a `<tool_call>` block
  the model starts is such a call;
- `response_format` `json_schema` / `json_object`: the reply is that JSON (with tools on
  `auto`, tool calls stay an alternative).

Anything else is unconstrained and costs nothing. A tool schema or response format the
grammar library refuses is a 400 naming it, in one line. Knows the OpenAI request fields;
the grammars themselves are `llm.infer.guidance`'s.
"""

from __future__ import annotations

from llm.infer.guidance import GrammarError, Guidance, Guide, reply_grammar, tool_arguments_schema
from llm.serve.api_errors import APIError
from llm.serve.protocol import ChatCompletionRequest, NamedToolChoice, ResponseFormat

__all__ = ["request_guide"]


def request_guide(
    req: ChatCompletionRequest, choice: object, guidance: Guidance, guided_tools: bool
) -> Guide | None:
    """The compiled grammar for this request's reply, or None when nothing constrains it.

    `choice` is the effective tool_choice ("none", "auto", "required" or a named function,
    already checked against the tools).
    """
    answer = _answer_schema(req.response_format)
    if isinstance(choice, NamedToolChoice):
        names, calls = [choice.function.name], "one"
    elif choice == "required":
        names, calls = None, "some" if req.parallel_tool_calls else "one"
    elif choice == "auto" and (guided_tools or answer is not None):
        names, calls = None, "text" if answer is None else "some"
    elif answer is not None:
        return _compile(guidance, reply_grammar(answer=answer), req, {}, answer)
    else:
        return None
    if answer is not None and choice != "auto":
        raise APIError(
            400,
            f"response_format {req.response_format.type} cannot be combined with tool_choice {_choice_name(choice)}: "
            "the reply would have to be both a tool call and that JSON",
            param="response_format",
        )
    schemas = _tool_schemas(req, names)
    return _compile(guidance, reply_grammar(schemas, calls, answer), req, schemas, answer)


def _answer_schema(fmt: ResponseFormat | None) -> dict | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise APIError(
            400,
            'response_format {"type": "json_schema"} needs "json_schema": {"name": ..., "schema": {...}}',
            param="response_format",
        )
    return fmt.json_schema.schema_


def _tool_schemas(req: ChatCompletionRequest, names: list[str] | None) -> dict[str, dict]:
    """{tool name: schema of its arguments} for the tools the reply may call (all when names is None)."""
    schemas: dict[str, dict] = {}
    for i, tool in enumerate(req.tools or []):
        fn = tool.function
        if (names is None or fn.name in names) and fn.name not in schemas:
            try:
                schemas[fn.name] = tool_arguments_schema(fn.parameters)
            except GrammarError as exc:
                raise APIError(400, f"tools[{i}] ({fn.name}): {exc}", param="tools") from exc
    return schemas


def _compile(
    guidance: Guidance, grammar: str, req: ChatCompletionRequest, schemas: dict[str, dict], answer: dict | None
) -> Guide:
    try:
        return guidance.compile(grammar)
    except GrammarError as exc:
        raise _culprit(guidance, req, schemas, answer) or APIError(
            400, f"cannot constrain the reply: {exc}", param="tools" if schemas else "response_format"
        ) from exc


def _culprit(
    guidance: Guidance, req: ChatCompletionRequest, schemas: dict[str, dict], answer: dict | None
) -> APIError | None:
    """The request field whose schema fails on its own, as a 400 that names it."""
    index = {t.function.name: i for i, t in reversed(list(enumerate(req.tools or [])))}
    for name, schema in schemas.items():
        try:
            guidance.check_schema(schema)
        except GrammarError as exc:
            return APIError(400, f"tools[{index[name]}] ({name}): parameters: {exc}", param="tools")
    if answer is not None:
        try:
            guidance.check_schema(answer)
        except GrammarError as exc:
            return APIError(400, f"response_format: json_schema.schema: {exc}", param="response_format")
    return None


def _choice_name(choice: object) -> str:
    return f"function {choice.function.name!r}" if isinstance(choice, NamedToolChoice) else repr(choice)
