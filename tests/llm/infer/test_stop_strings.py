"""Stop strings across token boundaries, and streaming that never splits a UTF-8 character."""

from llm.infer.stop_strings import StopStringMatcher, TextStream


def test_stop_string_split_across_pieces_is_found_and_not_emitted():
    m = StopStringMatcher(["<|end|>"])
    out = [m.push(p) for p in ["Hello <", "|en", "d|> more"]]
    assert "".join(out) == "Hello " and m.stopped
    assert out[1] == ""  # "<|en" could still be the stop: held back


def test_held_back_text_is_released_when_it_cannot_be_a_stop():
    m = StopStringMatcher(["STOP"])
    assert m.push("a ST") == "a "
    assert m.push("ART") == "START"
    assert m.push(" ST") == " "
    assert m.flush() == "ST" and not m.stopped


def test_earliest_of_several_stops_wins():
    m = StopStringMatcher(["world", "lo w"])
    assert m.push("hello world") == "hel" and m.stopped


def test_byte_tokens_stream_whole_characters(tokenizer):
    text = "naïve → 日本 🎉!"
    stream = TextStream(tokenizer)
    pieces = [stream.push(t) for t in tokenizer.encode(text)] + [stream.finish()]
    assert "".join(pieces) == text
    for piece in pieces:
        piece.encode("utf-8")  # never a lone surrogate or a half character
        assert "\ufffd" not in piece


def test_stop_string_made_of_multibyte_characters(tokenizer):
    stream = TextStream(tokenizer, ["→ 日"])
    pieces = []
    for t in tokenizer.encode("a → 日本"):
        pieces.append(stream.push(t))
        if stream.stopped:
            break
    assert "".join(pieces) == "a " and stream.stopped
