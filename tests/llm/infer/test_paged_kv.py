"""The paged KV cache against the naive reference: a full forward pass without any cache."""

import pytest
import torch

from llm.config import ModelConfig
from llm.infer.block_pool import BlockPool
from llm.infer.paged_kv import OutOfBlocks, PagedKVCache
from llm.model import GPT


def tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128, max_seq_len=96)
    return GPT(cfg).eval()


def reference_logits(model, ids):
    logits, _ = model(torch.tensor([ids]))
    return logits[0]  # (T, V)


def test_pool_hands_out_distinct_blocks_and_takes_them_back():
    pool = BlockPool(4)
    a, b = pool.allocate(3), pool.allocate(1)
    assert sorted(a + b) == [0, 1, 2, 3] and pool.num_free == 0
    with pytest.raises(OutOfBlocks, match="need 1 KV blocks but only 0 of 4"):
        pool.allocate(1)
    pool.release(a)
    assert pool.num_free == 3 and pool.num_used == 1


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


def _logits(model, tokens, positions, view):
    from llm.serve.forward import forward_logits

    return forward_logits(model, torch.tensor([tokens]), positions.unsqueeze(0), view)[0]  # (T, V)


@pytest.mark.parametrize("kind", ["gpt", "inference_model"])
@torch.inference_mode()
def test_chunked_prefill_gives_the_logits_of_one_shot_prefill(kind):
    from llm.infer.inference_model import InferenceModel

    gpt = tiny_model()
    model = gpt if kind == "gpt" else InferenceModel.from_gpt(gpt)
    torch.manual_seed(4)
    p = torch.randint(0, 64, (37,)).tolist()
    cache = PagedKVCache.for_model(model, num_blocks=24, block_size=4)
    cache.reserve(0, len(p))
    one_shot = _logits(model, p, torch.arange(len(p)), cache.batch([0]))
    cache.reserve(1, len(p))
    chunks = [_logits(model, p[a:b], torch.arange(a, b), cache.batch([1])) for a, b in ((0, 5), (5, 16), (16, 30), (30, 37))]
    torch.testing.assert_close(torch.cat(chunks), one_shot, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_shot, reference_logits(gpt, p), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["gpt", "inference_model"])
@torch.inference_mode()
def test_a_sequence_started_from_cached_blocks_computes_only_the_rest_and_gets_the_same_logits(kind):
    from llm.infer.inference_model import InferenceModel

    gpt = tiny_model()
    model = gpt if kind == "gpt" else InferenceModel.from_gpt(gpt)
    torch.manual_seed(5)
    system = torch.randint(0, 64, (18,)).tolist()
    first, second = system + [1, 2, 3], system + [9, 8, 7, 6, 5]
    cache = PagedKVCache.for_model(model, num_blocks=16, block_size=4, prefix_caching=True)
    cache.reserve(0, len(first))
    _logits(model, first, torch.arange(len(first)), cache.batch([0]))
    cache.cache_computed(0, first, len(first))
    cache.free(0)  # finished: its 5 full blocks stay cached
    hit = cache.lookup_prefix(second)
    assert len(hit.blocks) == 4  # the shared 18 tokens cover 4 full blocks (16 tokens)
    start = cache.adopt(1, hit)
    cache.reserve(1, len(second))
    rest = _logits(model, second[start:], torch.arange(start, len(second)), cache.batch([1]))
    torch.testing.assert_close(rest, reference_logits(gpt, second)[start:], atol=1e-4, rtol=1e-4)
    assert cache.tables[1][:4] == hit.blocks and cache.num_used_blocks == 6
    cache.free(1)
    assert cache.num_used_blocks == 0 and cache.num_free_blocks == 16


def test_a_fully_cached_prompt_still_computes_its_last_token():
    cache = PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=2, num_blocks=8, block_size=4, prefix_caching=True)
    p = list(range(8))
    cache.reserve(0, 8)
    cache.cache_computed(0, p, 8)
    cache.free(0)
    assert cache.num_cached_blocks == 2
    assert len(cache.lookup_prefix(p).blocks) == 1  # the second block holds the last token: computed again
    assert len(cache.lookup_prefix(p + [8]).blocks) == 2
    off = PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=2, num_blocks=8, block_size=4)
    off.reserve(0, 8)
    off.cache_computed(0, p, 8)
    off.free(0)
    assert off.num_cached_blocks == 0 and off.lookup_prefix(p + [8]).blocks == []
