"""Token log-probabilities in OpenAI's two formats: chat (`logprobs.content`) and legacy completions.

Token strings are the token's bytes decoded leniently (a token holding half a UTF-8
character shows U+FFFD); the exact bytes travel alongside in the chat format.
Knows the tokenizer and the wire shapes; the numbers come from the model runner.
"""

from __future__ import annotations

from llm.serve.protocol import ChoiceLogprobs, CompletionLogprobs, TokenLogprob, TopLogprob
from llm.serve.sequence import TokenLogprobs
from llm.tokenizer import Tokenizer

__all__ = ["chat_logprobs", "completion_logprobs"]


def _token(tok: Tokenizer, token_id: int) -> tuple[str, list[int]]:
    raw = tok.id_to_bytes(token_id)
    return raw.decode("utf-8", errors="replace"), list(raw)


def chat_logprobs(tok: Tokenizer, entries: list[TokenLogprobs]) -> ChoiceLogprobs:
    content = []
    for e in entries:
        text, raw = _token(tok, e.token)
        top = [TopLogprob(token=t, logprob=lp, bytes=b) for t, b, lp in ((*_token(tok, i), lp) for i, lp in e.top)]
        content.append(TokenLogprob(token=text, logprob=e.logprob, bytes=raw, top_logprobs=top))
    return ChoiceLogprobs(content=content)


def completion_logprobs(tok: Tokenizer, entries: list[TokenLogprobs], offset: int) -> CompletionLogprobs:
    """`offset` is the character position in the choice text where these tokens begin."""
    tokens, lps, tops, offsets = [], [], [], []
    for e in entries:
        text, _ = _token(tok, e.token)
        tokens.append(text)
        lps.append(e.logprob)
        tops.append({_token(tok, i)[0]: lp for i, lp in e.top})
        offsets.append(offset)
        offset += len(text)
    return CompletionLogprobs(tokens=tokens, token_logprobs=lps, top_logprobs=tops, text_offset=offsets)
