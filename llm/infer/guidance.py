"""Grammar-constrained decoding: a grammar decides which tokens may come next, the sampler obeys.

Built on `llguidance` (Lark grammars with embedded JSON schemas, token masks computed on
the CPU): `Guidance` is the library's view of one tokenizer, built once from our token byte
strings; it compiles grammar text into a `Guide`, one sequence's position in the grammar.
A decoding loop asks `guide.allowed()` for a (V,) bool mask before sampling (see
`llm.infer.sampling.constrain`), calls `guide.accept(token)` after, and stops once
`guide.done` (the grammar is complete: nothing but an end-of-reply id could follow).

`reply_grammar` writes the grammars the server needs in our ChatML tool-call syntax
(`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, see `llm.chat_template`):
tool-call blocks whose arguments follow each tool's JSON schema, free text with such
blocks, or a JSON answer. JSON is written the way `json.dumps` writes it (", " and ": ",
a space after the separators optional, no other whitespace), the layout the models are
trained on; it also keeps a random model from padding its output with whitespace forever.

Knows token bytes and grammars; nothing about models, HTTP or the OpenAI format.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal

import llguidance
import numpy as np
import torch

from llm.chat_template import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from llm.errors import InferenceError
from llm.tokenizer import Tokenizer

__all__ = ["GrammarError", "Guidance", "Guide", "reply_grammar", "tool_arguments_schema"]

# llguidance's per-schema options ("x-guidance"): separators are regexes, so a space after
# each is optional; no whitespace is allowed anywhere else.
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ?", "key_separator": ": ?"}
CALL_SEPARATOR = "\n"  # between the blocks of one reply, as the ChatML renderer writes them


class GrammarError(InferenceError):
    """A grammar or JSON schema the grammar library cannot compile (the message is one line)."""


class Guide:
    """One sequence's position in a compiled grammar: the tokens it allows next, advanced token by token."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int) -> None:
        self._m = matcher
        self._vocab = vocab_size
        self.error: str | None = None  # set when a token was refused or the grammar hit a limit

    def fork(self) -> Guide:
        """An independent copy at the same position (each of a request's choices gets one)."""
        return Guide(self._m.deep_copy(), self._vocab)

    def allowed(self) -> torch.Tensor:
        """(V,) bool: the tokens that keep the output valid (end-of-reply ids once it may end)."""
        bits = np.frombuffer(self._m.compute_bitmask(), dtype=np.uint8)
        return torch.from_numpy(np.unpackbits(bits, bitorder="little")[: self._vocab].astype(bool))

    def accept(self, token: int) -> None:
        if not self._m.consume_token(token) and self.error is None:
            self.error = _one_line(self._m.get_error()) or f"token {token} does not fit the grammar"

    @property
    def done(self) -> bool:
        """The grammar is complete (or failed, see `error`): the sequence should end here."""
        if self.error is None and self._m.is_error():
            self.error = _one_line(self._m.get_error())
        return self._m.is_stopped()


class Guidance:
    """The grammar library's tokenizer for our vocabulary; compiles grammars into `Guide`s.

    Building it walks the whole vocabulary (about 0.1 s for 49k tokens), so a server builds
    one at start-up. `end_ids` are the ids that end a reply: a guide allows them exactly
    where the grammar may end. The last `cache_size` compiled grammars are kept: an agent
    sends the same tools every turn, and forks of one compiled grammar also share the
    lexer states its earlier guides built (no compile, no warm-up).
    """

    def __init__(self, tokenizer: Tokenizer, end_ids: Iterable[int], cache_size: int = 32) -> None:
        ends = sorted(set(end_ids))
        assert ends, "guided decoding needs at least one end-of-reply id"
        self.vocab_size = tokenizer.vocab_size
        self._tok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_TokenBytes(tokenizer, ends[0])), eos_token=ends)
        self._compiled: OrderedDict[str, Guide] = OrderedDict()  # grammar text -> a guide never advanced
        self._cache_size = cache_size

    def compile(self, grammar: str) -> Guide:
        """A guide at the start of `grammar` (Lark text, see `reply_grammar`); GrammarError if it is invalid."""
        start = self._compiled.get(grammar)
        if start is None:
            matcher = llguidance.LLMatcher(self._tok, grammar, log_level=0)
            if matcher.is_error():
                raise GrammarError(_one_line(matcher.get_error()))
            start = Guide(matcher, self.vocab_size)
            if len(self._compiled) >= self._cache_size:
                self._compiled.popitem(last=False)
        self._compiled[grammar] = start
        self._compiled.move_to_end(grammar)
        return start.fork()

    def check_schema(self, schema: dict) -> None:
        """GrammarError (the library's reason, one line) if `schema` cannot be compiled on its own."""
        self.compile(_lark([f"start: {_json(schema)}"]))


class _TokenBytes:
    """What `llguidance.TokenizerWrapper` reads: the bytes of every id, the special ids, an encoder."""

    def __init__(self, tokenizer: Tokenizer, eos: int) -> None:
        specials = set(tokenizer.special_tokens.values())
        known = specials | set(tokenizer.mergeable_ranks.values())
        self.eos_token_id = eos
        self.bos_token_id = None
        # An id missing from the vocabulary (a gap in the ranks) is marked special, so no text uses it.
        self.special_token_ids = sorted(specials | (set(range(tokenizer.vocab_size)) - known))
        self.tokens = [tokenizer.id_to_bytes(i) if i in known else b"" for i in range(tokenizer.vocab_size)]
        self._tokenizer = tokenizer

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self._tokenizer.encode(text)


def reply_grammar(
    tools: dict[str, dict] | None = None,
    calls: Literal["one", "some", "text"] = "some",
    answer: dict | None = None,
) -> str:
    """Lark grammar for an assistant reply.

    tools: {name: JSON schema of its arguments} (see `tool_arguments_schema`); calls: "one"
    block, "some" blocks (one or more, a newline apart) or "text" (free text in which every
    started block is constrained). answer: a JSON schema the reply follows instead; with
    tools, the reply is either tool-call blocks or that JSON.
    """
    assert tools or answer is not None, "a reply grammar needs tools or an answer schema"
    rules = []
    if tools:
        # One alternative per tool, its name written out: the arguments are then a JSON
        # document of their own, so "$ref"s into the tool's "$defs" resolve as written.
        rules.append("body: " + " | ".join(f"body_{i}" for i in range(len(tools))))
        for i, (name, schema) in enumerate(tools.items()):
            head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '
            rules.append(f"body_{i}: {json.dumps(head)} {_json(schema)} {json.dumps('}' + TOOL_CALL_CLOSE)}")
        if calls != "text" or answer is not None:
            more = "" if calls == "one" else f" ({json.dumps(CALL_SEPARATOR)} call)*"
            rules += [f"call: {json.dumps(TOOL_CALL_OPEN)} body", f"calls: call{more}"]
    if answer is not None:
        rules.append(f"answer: {_json(answer)}")
        top = "calls | answer" if tools else "answer"
    elif calls == "text":
        # Any text up to the first "<tool_call>" (lazy: the shortest match ends there), then
        # a constrained call; text that never opens a block is the final TEXT.
        rules += [f"opened[lazy]: TEXT {json.dumps(TOOL_CALL_OPEN)}", "TEXT: /(.|\\n)*/", "text_call: opened body"]
        top = "text_call* TEXT"
    else:
        top = "calls"
    return _lark([f"start: {top}", *rules])


def tool_arguments_schema(parameters: dict | None) -> dict:
    """A tool's `parameters` as the schema of its arguments object: none means any object.

    NOTE: unlike plain JSON Schema, declared properties are the only ones allowed unless the
    schema says otherwise (`additionalProperties`/`patternProperties`), as in OpenAI's strict
    mode: a parameter list is a function signature, and an argument the function does not
    take is an error, not an extension. Small models invent such arguments readily.
    """
    if parameters is None:
        return {"type": "object"}
    kind = parameters.get("type", "object")
    if kind != "object" and not (isinstance(kind, list) and "object" in kind):
        raise GrammarError(f'parameters must describe a JSON object (type "object"), not type {json.dumps(kind)}')
    closed = "properties" in parameters and not {"additionalProperties", "patternProperties"} & set(parameters)
    return {**parameters, "type": "object", **({"additionalProperties": False} if closed else {})}


def _json(schema: dict) -> str:
    style = schema.get("x-guidance")
    options = {**JSON_STYLE, **style} if isinstance(style, dict) else JSON_STYLE
    return "%json " + json.dumps({**schema, "x-guidance": options})


def _lark(lines: list[str]) -> str:
    return "\n".join(["%llguidance {}", *lines]) + "\n"


def _one_line(message: str) -> str:
    """llguidance's messages span lines (a regex with a caret under it, then an excerpt of the
    grammar); a client gets the reason on one line."""
    reason = []
    for line in message.strip().splitlines():
        line = line.strip()
        if re.match(r"\d+ \|", line):  # the grammar excerpt: the rest is about our text, not the schema
            break
        if line.strip("^ "):
            reason.append(line)
    text = " ".join(reason)
    return re.sub(r"^at \d+\(\d+\): ", "", text)
