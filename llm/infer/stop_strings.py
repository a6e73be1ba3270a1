"""Token ids -> text pieces, ending at stop strings even when one is split across tokens.

`StopStringMatcher` works on text: it emits what can no longer be the start of a stop
string and holds back the rest, so "<|end" + "|>" stops exactly like "<|end|>" and the
stop string never reaches the output. `TextStream` feeds it from token ids through the
tokenizer's `IncrementalDecoder`, which never splits a UTF-8 character.

Knows the tokenizer interface, nothing about models or sampling.
"""

from __future__ import annotations

from llm.tokenizer import IncrementalDecoder, Tokenizer

__all__ = ["StopStringMatcher", "TextStream"]


class StopStringMatcher:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.stopped = False
        self._pending = ""

    def push(self, text: str) -> str:
        """Text that is safe to emit; when a stop string completes, the text before it, and `stopped` is set."""
        if self.stopped:
            return ""
        buf = self._pending + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._pending = True, ""
            return buf[:cut]
        hold = max((self._partial_suffix(buf, s) for s in self.stops), default=0)
        self._pending = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold]

    @staticmethod
    def _partial_suffix(buf: str, stop: str) -> int:
        """Length of the longest end of `buf` that is a proper beginning of `stop`."""
        for n in range(min(len(stop) - 1, len(buf)), 0, -1):
            if buf.endswith(stop[:n]):
                return n
        return 0

    def flush(self) -> str:
        """The held-back text once the stream has ended without a stop."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out


class TextStream:
    """Push ids, get text; `stopped` turns True when a stop string appears (it is not emitted)."""

    def __init__(self, tokenizer: Tokenizer, stops: list[str] | None = None) -> None:
        self._decoder = IncrementalDecoder(tokenizer)
        self._matcher = StopStringMatcher(stops or [])
        self.text = ""

    @property
    def stopped(self) -> bool:
        return self._matcher.stopped

    def push(self, token_id: int) -> str:
        piece = self._matcher.push(self._decoder.push(token_id))
        self.text += piece
        return piece

    def finish(self) -> str:
        """Flush what is held back (an unfinished character becomes U+FFFD)."""
        piece = self._matcher.push(self._decoder.flush())
        piece += self._matcher.flush()
        self.text += piece
        return piece
