"""Byte-level BPE: training, round trips, the tokenizer.json file and streaming decode."""

import json

import pytest

from llm.errors import TokenizerError
from llm.tokenizer import GPT4_SPLIT_PATTERN, SPECIAL_TOKENS, IncrementalDecoder, Tokenizer

ENGLISH = (
    "The quick brown fox jumps over the lazy dog. A tokenizer splits text into pieces, and the "
    "pieces that appear together often are merged into one token. Training stops when the "
    "vocabulary is full or when no pair of tokens appears more than once. "
)
CODE = (
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\n"
    "for i in range(10):\n    print(f'{i}: {fibonacci(i)}')\n"
)
CJK = "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다。我们一起学习自然语言处理。"
EMOJI = "Great job 🎉🎉 thanks 🙏 see you 👋🏽 family 👨‍👩‍👧 flags 🇫🇷🇯🇵 "
CORPUS = [ENGLISH * 4, CODE * 4, CJK * 6, EMOJI * 6, "The price is 1234.56 dollars, 42 items, 7 days. " * 4]

VOCAB = 600


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(CORPUS, vocab_size=VOCAB)


def test_train_learns_merges_and_appends_specials(tok):
    assert sum(len(t) for t in CORPUS) > 2000  # "a few KB"
    assert 256 + len(SPECIAL_TOKENS) < tok.vocab_size <= VOCAB
    n = len(tok.mergeable_ranks)
    assert [tok.token_id(s) for s in SPECIAL_TOKENS] == list(range(n, n + len(SPECIAL_TOKENS)))
    assert tok.vocab_size == n + len(SPECIAL_TOKENS)
    assert tok.pattern == GPT4_SPLIT_PATTERN
    # Merges compress every script in the corpus, multi-byte characters included.
    for text in ("The quick brown fox", "東京は日本の首都です", "🎉🎉 thanks"):
        assert len(tok.encode(text)) < len(text.encode("utf-8")) / 2


def test_training_is_deterministic(tok):
    again = Tokenizer.train(CORPUS, vocab_size=VOCAB)
    assert again.mergeable_ranks == tok.mergeable_ranks
    assert again.special_tokens == tok.special_tokens


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world! It's 2024; isn't it?\n\n\tindented\r\nline  ",
        CJK,
        EMOJI,
        "mixed: 東京 🎉 code `x = 1` ",
        "unseen scripts: Ελληνικά עברית العربية ✓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x00\x7f",
        "",
    ],
)
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


def test_special_strings_are_plain_text_unless_asked(tok):
    text = "<|im_start|>user\nhi<|im_end|>"
    plain = tok.encode(text)
    assert tok.token_id("<|im_start|>") not in plain
    assert tok.decode(plain) == text
    special = tok.encode_with_special(text)
    assert special[0] == tok.token_id("<|im_start|>")
    assert special[-1] == tok.token_id("<|im_end|>")
    assert special[1:-1] == tok.encode("user\nhi")
    assert tok.decode(special) == text


def test_id_to_bytes_and_unknown_ids(tok):
    assert b"".join(tok.id_to_bytes(i) for i in tok.encode("東京 fox")) == "東京 fox".encode()
    assert tok.id_to_bytes(tok.token_id("<|endoftext|>")) == b"<|endoftext|>"
    with pytest.raises(TokenizerError, match=f"token id {tok.vocab_size} is not in"):
        tok.id_to_bytes(tok.vocab_size)
    with pytest.raises(TokenizerError, match="token id 99999"):
        tok.decode([65, 99999])


def test_unknown_special_lists_known_ones(tok):
    with pytest.raises(TokenizerError, match=r"no special token '<\|tool\|>'.*<\|endoftext\|>, <\|im_end\|>"):
        tok.token_id("<|tool|>")


def test_save_load_round_trip(tok, tmp_path):
    tok.save(tmp_path / "ckpt")
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["tokenizer.json"]  # no temp file left
    for path in (tmp_path / "ckpt", tmp_path / "ckpt" / "tokenizer.json"):
        loaded = Tokenizer.load(path)
        assert loaded.mergeable_ranks == tok.mergeable_ranks
        assert loaded.special_tokens == tok.special_tokens
        assert (loaded.pattern, loaded.name, loaded.vocab_size) == (tok.pattern, tok.name, tok.vocab_size)
        text = ENGLISH + CJK + EMOJI + "<|im_end|>"
        assert loaded.encode_with_special(text) == tok.encode_with_special(text)


def test_save_replaces_existing_file(tok, tmp_path):
    (tmp_path / "tokenizer.json").write_text("old")
    tok.save(tmp_path)
    assert Tokenizer.load(tmp_path).mergeable_ranks == tok.mergeable_ranks


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(TokenizerError, match=rf"{tmp_path / 'tokenizer.json'} does not exist"):
        Tokenizer.load(tmp_path)
    with pytest.raises(TokenizerError, match="nope.json does not exist"):
        Tokenizer.load(tmp_path / "nope.json")
    with pytest.raises(TokenizerError, match=rf"no tokenizer at {tmp_path / 'no-ckpt'}: give a checkpoint directory"):
        Tokenizer.load(tmp_path / "no-ckpt")


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"pattern": "a", "ranks_b64": {', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"pattern": "a", "special": {}}', "missing key.*ranks_b64"),
        ('{"pattern": "a", "ranks_b64": {"***": 0}, "special": {}}', "not valid base64"),
        ('{"pattern": "a", "ranks_b64": {"QQ==": -1}, "special": {}}', "non-negative integer"),
        ('{"pattern": "(", "ranks_b64": {"QQ==": 0}, "special": {}}', "invalid split pattern"),
        ('{"pattern": "a", "ranks_b64": {"QQ==": 0}, "special": {"<|x|>": 0}}', "reuse the id"),
    ],
)
def test_load_corrupt_file_names_it(tmp_path, content, problem):
    file = tmp_path / "tokenizer.json"
    file.write_text(content)
    with pytest.raises(TokenizerError, match=rf"tokenizer file {file} .*{problem}"):
        Tokenizer.load(tmp_path)


def test_truncated_file_is_refused(tok, tmp_path):
    tok.save(tmp_path)
    file = tmp_path / "tokenizer.json"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(TokenizerError, match="not valid JSON"):
        Tokenizer.load(file)


def test_saved_file_format(tok, tmp_path):
    tok.save(tmp_path)
    doc = json.loads((tmp_path / "tokenizer.json").read_text())
    assert set(doc) == {"name", "pattern", "ranks_b64", "special"}
    assert doc["ranks_b64"]["QQ=="] == tok.mergeable_ranks[b"A"]
    assert doc["special"] == {s: tok.token_id(s) for s in SPECIAL_TOKENS}


def test_train_rejects_bad_input():
    with pytest.raises(TokenizerError, match="too small"):
        Tokenizer.train(CORPUS, vocab_size=258)
    with pytest.raises(TokenizerError, match="input is empty"):
        Tokenizer.train(["", ""], vocab_size=300)
    with pytest.raises(TokenizerError, match="split pattern"):
        Tokenizer.train(CORPUS, vocab_size=300, pattern="(")


@pytest.mark.parametrize("text", [CJK, EMOJI, "ab🎉c東👨‍👩‍👧d"])
@pytest.mark.parametrize("granularity", ["tokens", "bytes"])
def test_incremental_decode_never_splits_a_character(tok, text, granularity):
    if granularity == "tokens":
        ids = tok.encode(text)
    else:  # one id per byte: every multi-byte character arrives in pieces
        ids = [tok.mergeable_ranks[bytes([b])] for b in text.encode("utf-8")]
    data = b""
    for k in range(len(ids) + 1):  # every prefix of the stream
        dec = IncrementalDecoder(tok)
        streamed = "".join(dec.push(i) for i in ids[:k])
        assert "\ufffd" not in streamed
        data = tok.decode_bytes(ids[:k])
        # Exactly the complete characters so far: at most an unfinished one is held back.
        assert streamed == data.decode("utf-8", errors="ignore")
        assert streamed + dec.flush() == tok.decode(ids[:k])
    assert data.decode("utf-8") == text


def test_incremental_decode_holds_back_partial_characters(tok):
    byte_ids = [tok.mergeable_ranks[bytes([b])] for b in "🎉".encode()]
    dec = IncrementalDecoder(tok)
    assert [dec.push(i) for i in byte_ids] == ["", "", "", "🎉"]
    assert dec.flush() == ""


def test_incremental_decode_replaces_invalid_bytes_like_decode(tok):
    # A lone continuation byte, an invalid lead byte, a truncated 3-byte sequence, then text,
    # and an unfinished emoji at the very end.
    raw = b"a\x80b\xffc\xe6\x9dd" + "🎉".encode()[:2]
    ids = [tok.mergeable_ranks[bytes([b])] for b in raw]
    dec = IncrementalDecoder(tok)
    streamed = [dec.push(i) for i in ids]
    tail = dec.flush()
    assert "".join(streamed) + tail == tok.decode(ids) == raw.decode("utf-8", errors="replace")
    assert tail == "\ufffd"
    assert dec.flush() == ""  # the decoder is reusable after a flush


def test_constructor_rejects_clashing_ids():
    ranks = {bytes([b]): b for b in range(256)}
    with pytest.raises(TokenizerError, match="reuse the id"):
        Tokenizer(GPT4_SPLIT_PATTERN, ranks, {"<|im_end|>": 65})
    with pytest.raises(TokenizerError, match="share the same id"):
        Tokenizer(GPT4_SPLIT_PATTERN, ranks, {"<|a|>": 300, "<|b|>": 300})
    gapped = Tokenizer(GPT4_SPLIT_PATTERN, ranks, {"<|im_end|>": 511})
    assert gapped.vocab_size == 512
