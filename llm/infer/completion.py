"""What a generation returns, and the rules that end it.

A `CompletionBuilder` follows one sequence token by token: it applies the end conditions
(an end-of-sequence id, a stop string, the token budget), turns ids into text pieces when a
tokenizer is given, and produces the `StreamEvent`s a caller streams and the `Completion`
it gets at the end. The plain decoding loop and speculative decoding share it, so both
stop the same way.

Knows sampling parameters and the tokenizer interface; nothing about models or caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm.infer.sampling import SamplingParams
from llm.infer.stop_strings import TextStream
from llm.tokenizer import Tokenizer

__all__ = ["StreamEvent", "Completion", "CompletionBuilder"]


@dataclass(frozen=True)
class StreamEvent:
    """One step of one sequence: the new token (None for the end-of-sequence id, which is not
    output) and the text it completed ("" while a character or a possible stop string is held
    back). The last event of a sequence carries its finish reason."""

    row: int
    token: int | None
    text: str
    finish_reason: str | None = None


@dataclass
class Completion:
    """Output ids (end-of-sequence id excluded), their text when a tokenizer was given, and why it ended.

    finish_reason is "stop" (end-of-sequence id or stop string) or "length" (token budget or
    the model's maximum context).
    """

    tokens: list[int]
    text: str | None
    finish_reason: str
    prompt_tokens: int
    stats: dict[str, float] = field(default_factory=dict)


class CompletionBuilder:
    def __init__(
        self,
        row: int,
        prompt_tokens: int,
        params: SamplingParams,
        end_ids: set[int],
        max_new: int,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        self.row, self.prompt_tokens, self.params = row, prompt_tokens, params
        self.end_ids = (set() if params.ignore_eos else set(end_ids)) | set(params.stop_token_ids)
        self.max_new = max_new
        self.tokens: list[int] = []
        self.finish_reason: str | None = None
        self._text = TextStream(tokenizer, params.stop) if tokenizer is not None else None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> StreamEvent | None:
        """Record the next token; None once the sequence has already finished."""
        if self.finished:
            return None
        if token in self.end_ids:
            return self._finish("stop", None, "")
        self.tokens.append(token)
        text = self._text.push(token) if self._text is not None else ""
        if self._text is not None and self._text.stopped:
            return self._finish("stop", token, text)
        if len(self.tokens) >= self.max_new:
            return self._finish("length", token, text)
        return StreamEvent(self.row, token, text)

    def _finish(self, reason: str, token: int | None, text: str) -> StreamEvent:
        self.finish_reason = reason
        if self._text is not None:
            text += self._text.finish()
        return StreamEvent(self.row, token, text, reason)

    def completion(self) -> Completion:
        assert self.finish_reason is not None, "the sequence has not finished"
        text = self._text.text if self._text is not None else None
        return Completion(self.tokens, text, self.finish_reason, self.prompt_tokens)
