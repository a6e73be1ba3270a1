"""The paged KV cache against the naive reference: a full forward pass without any cache."""

import pytest
import torch

from llm.config import ModelConfig
from llm.infer.paged_kv import BlockAllocator, OutOfBlocks, PagedKVCache
from llm.model import GPT


def tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128, max_seq_len=96)
    return GPT(cfg).eval()


def reference_logits(model, ids):
    logits, _ = model(torch.tensor([ids]))
    return logits[0]  # (T, V)


def test_allocator_hands_out_distinct_blocks_and_takes_them_back():
    alloc = BlockAllocator(4)
    a, b = alloc.allocate(3), alloc.allocate(1)
    assert sorted(a + b) == [0, 1, 2, 3] and alloc.num_free == 0
    with pytest.raises(OutOfBlocks, match="need 1 KV blocks but only 0 of 4"):
        alloc.allocate(1)
    alloc.free(a)
    assert alloc.num_free == 3 and alloc.num_used == 1


def test_blocks_are_allocated_on_demand_and_freed_at_finish():
    cache = PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=2, num_blocks=5, block_size=4)
    cache.reserve(7, 1)
    assert cache.capacity(7) == 4 and cache.num_used_blocks == 1
    cache.reserve(7, 4)
    assert cache.num_used_blocks == 1  # still fits
    cache.reserve(7, 5)
    assert cache.capacity(7) == 8 and cache.num_used_blocks == 2
    assert cache.blocks_needed(8, 9) == 3
    with pytest.raises(OutOfBlocks):
        cache.reserve(8, 13)  # 4 blocks, 3 free
    assert 8 not in cache.tables  # a failed reserve takes nothing
    cache.free(7)
    assert cache.num_used_blocks == 0 and cache.num_free_blocks == 5


@torch.inference_mode()
def test_prefill_then_batched_decode_at_different_positions_matches_no_cache():
    model = tiny_model()
    torch.manual_seed(1)
    prompts = [torch.randint(0, 64, (n,)).tolist() for n in (5, 19, 11)]
    cache = PagedKVCache.for_model(model, num_blocks=16, block_size=4)
    for sid, p in enumerate(prompts):
        cache.reserve(sid, len(p))
        logits, _ = model(torch.tensor([p]), positions=torch.arange(len(p)), kv_cache=cache.batch([sid]))
        torch.testing.assert_close(logits[0], reference_logits(model, p), atol=1e-5, rtol=1e-5)
    seqs = [list(p) for p in prompts]
    for step in range(6):  # crosses block boundaries at different steps for each sequence
        nxt = [(7 * step + 3 * sid) % 64 for sid in range(3)]
        for sid, s in enumerate(seqs):
            s.append(nxt[sid])
            cache.reserve(sid, len(s))
        pos = torch.tensor([[len(s) - 1] for s in seqs])  # (B, 1): every row at its own position
        logits, _ = model(torch.tensor([[t] for t in nxt]), positions=pos, kv_cache=cache.batch([0, 1, 2]))
        for sid, s in enumerate(seqs):
            torch.testing.assert_close(logits[sid, 0], reference_logits(model, s)[-1], atol=1e-5, rtol=1e-5)


@torch.inference_mode()
def test_rows_with_several_new_tokens_at_different_positions_match_no_cache():
    model = tiny_model()
    torch.manual_seed(2)
    a, b = torch.randint(0, 64, (12,)).tolist(), torch.randint(0, 64, (5,)).tolist()
    cache = PagedKVCache.for_model(model, num_blocks=8, block_size=4)
    cache.reserve(0, len(a))
    cache.reserve(1, len(b))
    model(torch.tensor([a[:9]]), positions=torch.arange(9), kv_cache=cache.batch([0]))
    model(torch.tensor([b[:2]]), positions=torch.arange(2), kv_cache=cache.batch([1]))
    idx = torch.tensor([a[9:], b[2:]])  # (2, 3): three new tokens per row
    pos = torch.tensor([[9, 10, 11], [2, 3, 4]])
    logits, _ = model(idx, positions=pos, kv_cache=cache.batch([0, 1]))
    torch.testing.assert_close(logits[0], reference_logits(model, a)[9:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[1], reference_logits(model, b)[2:], atol=1e-5, rtol=1e-5)


@torch.inference_mode()
def test_chunked_prefill_and_rewind_reuse_the_same_slots():
    model = tiny_model()
    torch.manual_seed(3)
    p = torch.randint(0, 64, (13,)).tolist()
    cache = PagedKVCache.for_model(model, num_blocks=8, block_size=4)
    cache.reserve(0, len(p))
    model(torch.tensor([p[:6]]), positions=torch.arange(6), kv_cache=cache.batch([0]))
    logits, _ = model(torch.tensor([p[6:]]), positions=torch.arange(6, 13), kv_cache=cache.batch([0]))
    torch.testing.assert_close(logits[0], reference_logits(model, p)[6:], atol=1e-5, rtol=1e-5)
    # Rewinding (as speculative decoding does after a rejected draft) is writing at an earlier position.
    q = p[:10] + [5, 6]
    logits, _ = model(torch.tensor([q[10:]]), positions=torch.arange(10, 12), kv_cache=cache.batch([0]))
    torch.testing.assert_close(logits[0], reference_logits(model, q)[10:], atol=1e-5, rtol=1e-5)


def test_freed_blocks_are_reused_by_the_next_sequence():
    cache = PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=2, num_blocks=3, block_size=2)
    cache.reserve(0, 6)
    blocks = list(cache.tables[0])
    cache.free(0)
    cache.reserve(1, 6)
    assert sorted(cache.tables[1]) == sorted(blocks) and cache.num_free_blocks == 0


def test_native_attention_reads_the_blocks_like_the_gathered_copy():
    from llm.infer import kernels

    if kernels.native_kernels() is None:
        pytest.skip("native kernels not available")
    torch.manual_seed(0)
    cache = PagedKVCache(n_layers=1, n_kv_heads=2, head_dim=8, num_blocks=12, block_size=4)
    lengths = {3: 9, 5: 2, 8: 14}  # rows of different lengths, blocks handed out interleaved
    for n in range(1, 15):
        for sid, length in lengths.items():
            if n <= length:
                cache.reserve(sid, n)
    cache.k.normal_()
    cache.v.normal_()
    ids = list(lengths)
    positions = torch.tensor([[lengths[s] - 2, lengths[s] - 1] for s in ids])  # (B, T=2): two new tokens per row
    q = torch.randn(3, 4, 2, 8)  # (B, H, T, E), 2 query heads per KV head
    k_new, v_new = torch.randn(3, 2, 2, 8), torch.randn(3, 2, 2, 8)  # (B, K, T, E)

    paged = cache.batch(ids).attend(0, q, k_new, v_new, positions)  # (B, T, H, E)
    view = cache.batch(ids)
    k_all, v_all, _ = view.update(0, k_new, v_new, positions)  # the same store, then a gathered copy
    gathered = kernels.attention(q, k_all.contiguous(), v_all.contiguous(), positions)
    assert paged is not None and torch.equal(paged, gathered)
    with kernels.force_reference():  # and both agree with masked SDPA
        ref = kernels.attention(q, k_all, v_all, positions)
    assert torch.allclose(paged, ref, atol=1e-5)
