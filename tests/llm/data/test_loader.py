"""`TokenWindows`: batches are a pure function of (seed, sample index)."""

import numpy as np
import pytest
import torch

from llm.data.loader import TokenWindows, token_byte_lengths
from llm.data.prepare import prepare_data, train_tokenizer
from llm.data.shards import PreparedData
from llm.errors import DataError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "d"
    prepare_data(
        "stdlib:json,textwrap", train_tokenizer("stdlib:textwrap", 400), out, val_fraction=0.2, shard_tokens=5000
    )
    return PreparedData.open(out)


def test_windows_are_next_token_pairs_from_the_shards(data):
    w = TokenWindows(data, seq_len=32, seed=0)
    x, y = w.train_batch(0, 4)
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    stream = np.concatenate([np.asarray(s) for s in data.train])
    row = x[0].numpy()
    starts = [i for i in range(len(stream) - 32) if np.array_equal(stream[i : i + 32], row)]
    assert starts, "window not found in the training stream"


def test_batch_split_does_not_change_the_samples(data):
    w = TokenWindows(data, seq_len=32, seed=3)
    x8, y8 = w.train_batch(40, 8)
    parts = [w.train_batch(40 + 2 * k, 2) for k in range(4)]
    assert torch.equal(torch.cat([p[0] for p in parts]), x8)
    assert torch.equal(torch.cat([p[1] for p in parts]), y8)
    assert torch.equal(TokenWindows(data, 32, seed=3).train_batch(40, 8)[0], x8)  # a fresh loader agrees (resume)
    assert not torch.equal(TokenWindows(data, 32, seed=4).train_batch(40, 8)[0], x8)


def test_each_epoch_visits_every_window_once(data):
    w = TokenWindows(data, seq_len=64, seed=1)
    n = w.train_windows
    first = w.train_batch(0, n)[0]
    second = w.train_batch(n, n)[0]
    as_set = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert as_set(first) == as_set(second)
    assert not torch.equal(first, second)  # reshuffled


def test_val_batches_are_fixed_and_shared_across_ranks(data):
    w = TokenWindows(data, seq_len=32, seed=0)
    all_batches = list(w.val_batches(4, 18))
    assert [len(x) for x, _ in all_batches] == [4, 4, 4, 4, 2]
    r0 = list(w.val_batches(4, 18, rank=0, world=2))
    r1 = list(w.val_batches(4, 18, rank=1, world=2))
    assert len(r0) + len(r1) == len(all_batches)
    assert torch.equal(r0[1][0], all_batches[2][0]) and torch.equal(r1[0][0], all_batches[1][0])
    by_eight = torch.cat([x for x, _ in w.val_batches(8, 18)])
    assert torch.equal(by_eight, torch.cat([x for x, _ in all_batches]))  # the set ignores the batch size


def test_byte_lengths_count_utf8_bytes_and_skip_specials(data):
    lengths = token_byte_lengths(data, data.vocab_size + 10)
    tok = data.tokenizer
    ids = tok.encode("héllo wörld")
    assert int(lengths[torch.tensor(ids)].sum()) == len("héllo wörld".encode())
    assert all(lengths[i] == 0 for i in tok.special_tokens.values())
    assert lengths[-10:].sum() == 0


def test_sequence_longer_than_the_data_is_an_error(data):
    with pytest.raises(DataError, match="lower train.seq_len"):
        TokenWindows(data, seq_len=10**6, seed=0)
