"""The block pool's prefix cache: reference counts, LRU eviction, and exact matching despite hash collisions."""

import pytest

from llm.infer.block_pool import BlockPool, OutOfBlocks

BS = 4


def fill(pool, tokens):
    """Allocate and register the full blocks of `tokens` as one sequence would; returns its blocks."""
    n = len(tokens) // BS
    blocks, parent = pool.allocate(n), None
    for b in range(n):
        parent = pool.register(blocks[b], parent, tuple(tokens[b * BS : (b + 1) * BS]))
    return blocks


def test_released_registered_blocks_stay_cached_and_are_found_again():
    pool = BlockPool(8)
    seq = list(range(12))
    blocks = fill(pool, seq)
    pool.release(blocks)
    assert pool.num_used == 0 and pool.num_free == 8 and pool.num_cached == 3 and pool.num_idle == 3
    hit = pool.lookup(seq + [99], BS, max_blocks=3)
    assert hit.blocks == blocks and hit.idle == 3
    assert pool.lookup(seq[:4] + [7, 7, 7, 7], BS, 3).blocks == blocks[:1]  # the prefix diverges in block 2
    assert pool.lookup([1] + seq[1:], BS, 3).blocks == []  # and here in block 1
    assert pool.lookup(seq, BS, max_blocks=2).blocks == blocks[:2]


def test_holds_are_counted_and_shared_blocks_are_not_idle():
    pool = BlockPool(4)
    blocks = fill(pool, list(range(8)))
    hit = pool.lookup(list(range(9)), BS, 2)
    assert hit.idle == 0  # still held by their first sequence
    pool.hold(hit.blocks)
    assert [pool.refs[b] for b in blocks] == [2, 2]
    pool.release(blocks)
    assert pool.num_used == 2 and pool.num_idle == 0
    pool.release(hit.blocks)
    assert pool.num_used == 0 and pool.num_idle == 2 and all(r == 0 for r in pool.refs)


def test_eviction_is_lru_and_takes_the_deepest_block_of_a_prefix_first():
    pool = BlockPool(4)
    a = fill(pool, list(range(8)))  # 2 blocks
    pool.release(a)
    b = fill(pool, [50 + i for i in range(8)])  # 2 more, the pool is full
    pool.release(b)
    assert pool.num_free == 4 and pool.num_cached == 4
    [taken] = pool.allocate(1)
    assert taken == a[1] and pool.evictions == 1  # a's tail: released first, and deepest
    assert pool.lookup(list(range(9)), BS, 2).blocks == a[:1]
    pool.allocate(2)
    assert pool.lookup(list(range(9)), BS, 2).blocks == [] and pool.evictions == 3
    assert pool.lookup([50 + i for i in range(9)], BS, 2).blocks == b[:1]
    with pytest.raises(OutOfBlocks):
        pool.allocate(2)


def test_a_forced_colliding_hash_never_shares_a_block_between_different_prefixes():
    pool = BlockPool(16, hash_fn=lambda parent, tokens: 0)  # every block hashes alike
    first = fill(pool, [1, 2, 3, 4, 5, 6, 7, 8])
    other = fill(pool, [9, 9, 9, 9, 5, 6, 7, 8])  # same second block, different parent
    assert set(first).isdisjoint(other) and pool.num_cached == 4
    assert pool.lookup([1, 2, 3, 4, 5, 6, 7, 8, 0], BS, 2).blocks == first
    assert pool.lookup([9, 9, 9, 9, 5, 6, 7, 8, 0], BS, 2).blocks == other
    assert pool.lookup([5, 6, 7, 8, 0], BS, 1).blocks == []  # a second block's tokens are not a first block
    assert pool.lookup([1, 2, 3, 4, 9, 9, 9, 9, 0], BS, 2).blocks == first[:1]


def test_a_child_never_matches_once_its_parent_block_was_evicted_and_reused():
    pool = BlockPool(3, hash_fn=lambda parent, tokens: 0)
    a = fill(pool, [1, 1, 1, 1, 2, 2, 2, 2])
    pool.release(a[1:])  # the child is idle, the parent still held
    pool.release(a[:1])  # now the parent too: it is the most recent, evicted last
    pool.allocate(1)  # the free block
    pool.allocate(1)  # evicts the child
    [reused] = pool.allocate(1)  # evicts the parent
    assert reused == a[0] and pool.num_cached == 0
    pool.register(reused, None, (1, 1, 1, 1))  # the same first block again, in the same block id
    assert pool.lookup([1, 1, 1, 1, 2, 2, 2, 2, 0], BS, 2).blocks == [reused]


def test_equal_contents_registered_twice_keep_one_entry():
    pool = BlockPool(4)
    a = fill(pool, list(range(4)))
    [b] = pool.allocate(1)
    key = pool.register(b, None, tuple(range(4)))
    assert key == pool.lookup(list(range(5)), BS, 1).keys[0] and pool.num_cached == 1
    pool.release([b])
    assert pool.num_idle == 0 and pool.num_free == 3  # the duplicate goes back to the free list
    pool.release(a)
    assert pool.num_idle == 1 and pool.num_free == 4
