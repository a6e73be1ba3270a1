"""OpenAI request fields to what the engine runs: prompt token ids and one `SamplingOptions` per choice.

Every check a client can fail lives here and raises `APIError(400)` with a message naming
the parameter: unsupported parameters set to non-default values, prompts too long for the
context (both lengths named; text that cannot fit whatever its tokens is refused before it
is tokenized, since no token covers more than `max_token_bytes` bytes), `tool_choice` naming an unknown tool, schemas the grammar
library refuses (`llm.serve.guided`). Chats are rendered with the shared ChatML renderer, so
the server shows a model exactly the layout it was trained on.

Knows the tokenizer, the chat template and the wire format; nothing about batching.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from llm.chat_template import TOOL_CALL_OPEN, ChatTemplate, render_chat
from llm.errors import LLMError
from llm.infer.guidance import Guidance, Guide
from llm.serve.api_errors import APIError
from llm.serve.guided import request_guide
from llm.serve.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    NamedToolChoice,
    TokenizeRequest,
)
from llm.infer.sampling import SamplingParams
from llm.serve.sequence import SamplingOptions
from llm.tokenizer import Tokenizer

__all__ = [
    "ServedModel", "ChatPrompt", "chat_prompt", "completion_prompts", "tokenize_request", "sampling_options",
    "check_text_fits",
]

MAX_STOP = 16


@dataclass
class ServedModel:
    """What the HTTP layer knows about the model: its public name, tokenizer, template and limits."""

    name: str
    tokenizer: Tokenizer
    template: ChatTemplate
    max_model_len: int
    guidance: Guidance  # compiles the grammars of guided decoding for this tokenizer
    guided_tools: bool = False  # constrain tool calls under tool_choice "auto" too
    created: int = 0

    @cached_property
    def max_token_bytes(self) -> int:
        """The most text one token stands for (special tokens included): n bytes need >= n / this tokens."""
        tok = self.tokenizer
        return max(max(map(len, tok.mergeable_ranks)), max((len(s.encode()) for s in tok.special_tokens), default=1))


@dataclass
class ChatPrompt:
    ids: list[int]
    parse_tools: bool  # the reply's <tool_call> blocks become tool_calls
    forced_prefix: tuple[int, ...] = ()
    single_call: bool = False  # parallel_tool_calls=false: keep only the first call
    guide: Guide | None = None  # the grammar the reply follows (guided decoding)


def chat_prompt(req: ChatCompletionRequest, model: ServedModel) -> ChatPrompt:
    check_common(req)
    check_text_fits(model, _message_texts(req.messages), "messages")
    tools = [t.model_dump(exclude_none=True) for t in req.tools or []]
    names = [t.function.name for t in req.tools or []]
    choice = req.tool_choice or ("auto" if tools else "none")
    if choice != "none" and not tools:
        raise APIError(400, f"tool_choice {_choice_text(choice)} needs a non-empty `tools` list", param="tool_choice")
    forced: tuple[int, ...] = ()
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise APIError(
                400,
                f"tool_choice names function {choice.function.name!r}, which is not among the tools "
                f"({', '.join(names)})",
                param="tool_choice",
            )
        head = f'{TOOL_CALL_OPEN}{{"name": {json.dumps(choice.function.name, ensure_ascii=False)}, "arguments":'
        forced = _forced_tokens(model.tokenizer, head, head + " {}}")
    elif choice == "required":
        head = f'{TOOL_CALL_OPEN}{{"name": "'
        forced = _forced_tokens(model.tokenizer, head, head + 'x"}')
    guide = request_guide(req, choice, model.guidance, model.guided_tools)
    ids = _render(model, req.messages, tools if choice != "none" else None, add_generation_prompt=True)
    return ChatPrompt(
        ids=ids,
        parse_tools=choice != "none",
        forced_prefix=forced,
        single_call=not req.parallel_tool_calls,
        guide=guide,
    )


def completion_prompts(req: CompletionRequest, model: ServedModel) -> list[list[int]]:
    check_common(req)
    if req.suffix is not None:
        raise APIError(400, "suffix (fill-in-the-middle) is not supported; leave it out", param="suffix")
    if req.best_of is not None and req.best_of != req.n:
        raise APIError(400, f"best_of={req.best_of} is not supported; only best_of == n ({req.n})", param="best_of")
    if req.echo and req.logprobs is not None:
        raise APIError(400, "echo together with logprobs is not supported (prompt logprobs)", param="echo")
    p = req.prompt
    if isinstance(p, str):
        check_text_fits(model, [p], "prompt")
        prompts = [_encode(model, p)]
    elif not p:
        raise APIError(400, "prompt is an empty list; give text or token ids", param="prompt")
    elif all(isinstance(x, str) for x in p):
        for x in p:
            check_text_fits(model, [x], "prompt")
        prompts = [_encode(model, x) for x in p]
    elif all(isinstance(x, int) for x in p):
        prompts = [list(p)]
    else:
        prompts = [list(x) for x in p]
    for ids in prompts:
        check_ids(ids, model, "prompt")
    return prompts


def tokenize_request(req: TokenizeRequest, model: ServedModel) -> list[int]:
    if (req.prompt is None) == (req.messages is None):
        raise APIError(400, "give exactly one of `prompt` (text) or `messages` (a chat)", param="prompt")
    if req.prompt is not None:
        tok = model.tokenizer
        return tok.encode_with_special(req.prompt) if req.add_special_tokens else tok.encode(req.prompt)
    tools = [t.model_dump(exclude_none=True) for t in req.tools or []] or None
    return _render(model, req.messages, tools, req.add_generation_prompt)

def sampling_options(
    req: ChatCompletionRequest | CompletionRequest,
    model: ServedModel,
    prompt_len: int,
    max_tokens: int | None,
    logprobs: int | None,
    forced_prefix: tuple[int, ...] = (),
    guide: Guide | None = None,
) -> list[SamplingOptions]:
    """One options object per choice; choice i samples with seed + i so the n choices differ reproducibly."""
    limit = model.max_model_len
    if prompt_len >= limit:
        raise APIError(
            400,
            f"this model's maximum context length is {limit} tokens, but the prompt has {prompt_len} tokens; "
            "shorten the prompt",
            param="messages" if isinstance(req, ChatCompletionRequest) else "prompt",
            code="context_length_exceeded",
        )
    if max_tokens is not None and prompt_len + max_tokens > limit:
        raise APIError(
            400,
            f"this model's maximum context length is {limit} tokens, but {prompt_len + max_tokens} were requested "
            f"({prompt_len} in the prompt, {max_tokens} for the completion); lower max_tokens or shorten the prompt",
            param="max_tokens",
            code="context_length_exceeded",
        )
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > MAX_STOP:
        raise APIError(400, f"stop has {len(stop)} strings; at most {MAX_STOP} are supported", param="stop")
    return [
        SamplingOptions(
            params=SamplingParams(
                temperature=req.temperature,
                top_p=req.top_p,
                top_k=req.top_k,
                min_p=req.min_p,
                repetition_penalty=req.repetition_penalty,
                max_tokens=max_tokens if max_tokens is not None else limit - prompt_len,
                stop=stop,
                ignore_eos=req.ignore_eos,
                seed=None if req.seed is None else req.seed + i,
            ),
            logprobs=logprobs,
            forced_prefix=forced_prefix,
            guide=guide,
        )
        for i in range(req.n)
    ]

def check_text_fits(model: ServedModel, texts: Iterable[str], param: str) -> None:
    """400 without tokenizing when the text alone needs more tokens than the context holds."""
    size = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    at_least = -(-size // model.max_token_bytes)
    if at_least >= model.max_model_len:
        raise APIError(
            400,
            f"this model's maximum context length is {model.max_model_len} tokens, but the prompt has at least "
            f"{at_least} tokens ({size} bytes of text); shorten the prompt",
            param=param,
            code="context_length_exceeded",
        )


def _message_texts(messages: list[ChatMessage]) -> Iterable[str]:
    """The text of every message: all of it lands in the rendered prompt."""
    for m in messages:
        if isinstance(m.content, str):
            yield m.content
        elif m.content:
            yield from (part.text for part in m.content if part.text)


def check_common(req: ChatCompletionRequest | CompletionRequest) -> None:
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name):
            raise APIError(400, f"{name} is not supported; leave it out or set it to 0", param=name)
    if req.logit_bias:
        raise APIError(400, "logit_bias is not supported; leave it out", param="logit_bias")


def check_ids(ids: list[int], model: ServedModel, param: str) -> None:
    vocab = model.tokenizer.vocab_size
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise APIError(400, f"{param}: token id {bad[0]} is outside the vocabulary (0..{vocab - 1})", param=param)
    if not ids:
        raise APIError(400, f"{param} is empty; give at least one token", param=param)


def _render(
    model: ServedModel, messages: list[ChatMessage], tools: list[dict] | None, add_generation_prompt: bool
) -> list[int]:
    dicts = []
    for m in messages:
        msg = m.model_dump(exclude_none=True)
        if msg["role"] == "developer":  # OpenAI's newer name for the system role
            msg["role"] = "system"
        dicts.append(msg)
    try:
        ids, _ = render_chat(model.tokenizer, dicts, tools, add_generation_prompt, model.template)
    except LLMError as exc:
        raise APIError(400, f"messages: {exc}", param="messages") from exc
    return ids


def _encode(model: ServedModel, text: str) -> list[int]:
    # Raw prompts may spell ChatML by hand, so special-token text maps to the special ids.
    return model.tokenizer.encode_with_special(text)


def _forced_tokens(tok: Tokenizer, head: str, sample: str) -> tuple[int, ...]:
    """The tokens of `head` as they appear when a whole call is tokenized, up to the last token
    that ends inside `head`: forcing a different split would show the model a tokenization it
    never saw, and the model writes the rest of the head itself."""
    out: list[int] = []
    text = ""
    for t in tok.encode(sample):
        piece = tok.decode([t])
        if not head.startswith(text + piece):
            break
        out.append(t)
        text += piece
    return tuple(out)


def _choice_text(choice: object) -> str:
    return json.dumps(choice.model_dump()) if isinstance(choice, NamedToolChoice) else repr(choice)
