"""Paged KV cache: keys/values of many sequences in one pool of fixed-size blocks.

The design of vLLM's PagedAttention (Kwon et al. 2023, "Efficient Memory Management for
Large Language Model Serving with PagedAttention", section 4) at our scale: the pool holds
`num_blocks` blocks of `block_size` token slots per layer; each sequence owns a block table
(its list of block ids, in order) that grows one block at a time as the sequence grows and
goes back to the pool when the sequence finishes. No sequence reserves memory for tokens it
has not produced yet, so many sequences of different lengths share one budget. Blocks are
reference-counted and, with prefix caching, full blocks are shared between sequences with
the same prefix and kept after use (`llm.infer.block_pool`).

`PagedKVCache.batch(seq_ids)` returns a view that implements the model's KV cache protocol
(`update(layer, k, v, positions) -> (k_all, v_all, mask)`) for one forward pass over those
sequences. Row b of the batch belongs to `seq_ids[b]`, its tokens sit at `positions[b]`
(rows may be at different positions). The view writes the new keys/values into the sequences' slots and returns,
per row, all keys from position 0 up to the row's last position, right-padded to the
longest row, plus the boolean mask that hides the padding and future positions.

This module knows nothing about the model's weights, sampling or scheduling policy: the
caller decides which sequences run and when to grow or free them.

Tensor letters: L layers, B batch rows,
K kv heads, T new tokens per row, S keys per row, E head dim.
"""

from __future__ import annotations

import torch

from llm.errors import InferenceError
from llm.infer import kernels
from llm.infer.block_pool import BlockKey, BlockPool, HashFn, OutOfBlocks, PrefixHit, block_hash

__all__ = ["PagedKVCache", "PagedBatch", "OutOfBlocks", "PrefixHit"]


class PagedKVCache:
    """The block pool plus one block table per live sequence.

    With `prefix_caching`, full computed blocks are registered in the pool's content index
    (`cache_computed`) and a new sequence starts from the longest cached prefix of its
    tokens (`lookup_prefix`, then `adopt`); see `llm.infer.block_pool`.
    """

    def __init__(
        self,
        n_layers: int,
        n_kv_heads: int,
        head_dim: int,
        num_blocks: int,
        block_size: int = 16,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        prefix_caching: bool = False,
        hash_fn: HashFn = block_hash,
    ) -> None:
        if block_size < 1:
            raise InferenceError(f"block size must be at least 1 token, got {block_size}")
        self.block_size = block_size
        self.pool = BlockPool(num_blocks, hash_fn)
        self.prefix_caching = prefix_caching
        shape = (n_layers, num_blocks, block_size, n_kv_heads, head_dim)  # (L, blocks, block size, K, E)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.tables: dict[int, list[int]] = {}
        self._chains: dict[int, list[BlockKey]] = {}  # keys of each sequence's leading registered blocks

    @classmethod
    def for_model(cls, model, num_blocks: int, block_size: int = 16, **options) -> PagedKVCache:
        """Sized for `model.config`; keys/values in the model's float dtype (float32 for other forwards)."""
        cfg = model.config
        p = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        device = p.device if p is not None else "cpu"
        return cls(cfg.n_layers, cfg.kv_heads, cfg.head_dim, num_blocks, block_size, dtype, device, **options)

    @staticmethod
    def bytes_per_block(model_config, block_size: int, dtype: torch.dtype = torch.float32) -> int:
        """Memory of one block across all layers, keys and values: for sizing the pool from a budget."""
        elem = torch.empty((), dtype=dtype).element_size()
        return 2 * model_config.n_layers * block_size * model_config.kv_heads * model_config.head_dim * elem

    @property
    def num_blocks(self) -> int:
        return self.pool.num_blocks

    @property
    def num_free_blocks(self) -> int:
        """Blocks a sequence can still get (cached blocks nobody holds are evicted on demand)."""
        return self.pool.num_free

    @property
    def num_used_blocks(self) -> int:
        return self.pool.num_used

    @property
    def num_cached_blocks(self) -> int:
        return self.pool.num_cached

    def blocks_for(self, n_tokens: int) -> int:
        return -(-n_tokens // self.block_size)

    def capacity(self, seq_id: int) -> int:
        """Token slots the sequence owns now."""
        return len(self.tables.get(seq_id, ())) * self.block_size

    def blocks_needed(self, seq_id: int, n_tokens: int) -> int:
        """Extra blocks `reserve(seq_id, n_tokens)` would take."""
        return max(0, self.blocks_for(n_tokens) - len(self.tables.get(seq_id, ())))

    def reserve(self, seq_id: int, n_tokens: int) -> None:
        """Grow the sequence's block table to hold positions 0..n_tokens-1; raises `OutOfBlocks`."""
        new = self.pool.allocate(self.blocks_needed(seq_id, n_tokens))
        self.tables.setdefault(seq_id, []).extend(new)

    def free(self, seq_id: int) -> None:
        """Let go of all of the sequence's blocks (it finished, was cancelled or preempted).

        Registered blocks stay cached until their space is needed; the rest are free at once.
        """
        self.pool.release(self.tables.pop(seq_id, []))
        self._chains.pop(seq_id, None)

    def lookup_prefix(self, tokens: list[int]) -> PrefixHit:
        """Cached blocks holding the longest block-aligned prefix of `tokens`; changes nothing.

        At least the last token is left out, so the sequence computes it (its logits pick the
        next token) in a block of its own: a shared block is never written.
        """
        if not self.prefix_caching:
            return PrefixHit()
        return self.pool.lookup(tokens, self.block_size, (len(tokens) - 1) // self.block_size)

    def adopt(self, seq_id: int, hit: PrefixHit) -> int:
        """Start a sequence with no blocks yet from a prefix hit; returns the tokens it need not compute."""
        assert seq_id not in self.tables, f"sequence {seq_id} already has blocks"
        self.pool.hold(hit.blocks)
        self.tables[seq_id] = list(hit.blocks)
        self._chains[seq_id] = list(hit.keys)
        return len(hit.blocks) * self.block_size

    def cache_computed(self, seq_id: int, tokens: list[int], n_computed: int) -> None:
        """Register the sequence's full blocks among its first `n_computed` tokens (whose keys/values are written)."""
        if not self.prefix_caching or seq_id not in self.tables:
            return
        chain = self._chains.setdefault(seq_id, [])
        table, bs = self.tables[seq_id], self.block_size
        for b in range(len(chain), min(n_computed, len(tokens)) // bs):
            parent = chain[-1] if chain else None
            chain.append(self.pool.register(table[b], parent, tuple(tokens[b * bs : (b + 1) * bs])))

    def batch(self, seq_ids: list[int]) -> PagedBatch:
        """A view for one forward pass whose row b belongs to `seq_ids[b]`."""
        missing = [s for s in seq_ids if s not in self.tables]
        assert not missing, f"sequences {missing} have no blocks; reserve() them first"
        return PagedBatch(self, seq_ids)

    def slots(self, seq_id: int, positions: torch.Tensor) -> torch.Tensor:
        """Pool slot of each position (any shape) of one sequence."""
        table = torch.tensor(self.tables[seq_id], dtype=torch.long, device=self.k.device)
        return table[positions // self.block_size] * self.block_size + positions % self.block_size


class PagedBatch:
    """The KV cache protocol for one forward pass over some sequences of a `PagedKVCache`.

    Slot indices and the mask depend only on the positions, which are the same for every
    layer, so they are computed once (at the first layer) and reused.
    """

    # Slot j of the keys returned for a row holds that row's position j, so a forward pass may
    # derive the causal rule from positions alone (query at p sees slots 0..p) instead of the mask.
    slot_is_position = True

    def __init__(self, cache: PagedKVCache, seq_ids: list[int]) -> None:
        self.cache = cache
        self.seq_ids = list(seq_ids)
        self._positions: torch.Tensor | None = None
        self._write: torch.Tensor | None = None  # (B*T,) pool slots of the new tokens
        self._read: torch.Tensor | None = None  # (B, S / block size) blocks to gather
        self._mask: torch.Tensor | None = None  # (B, 1, T, S)

    def _plan(self, positions: torch.Tensor) -> None:
        cache, device = self.cache, self.cache.k.device
        bs = cache.block_size
        pos = positions if positions.dim() == 2 else positions.unsqueeze(0).expand(len(self.seq_ids), -1)
        B, T = pos.shape
        assert B == len(self.seq_ids), f"batch has {B} rows but the view was made for {len(self.seq_ids)} sequences"
        pos = pos.to(device)
        lengths = (pos.max(dim=1).values + 1).tolist()  # keys each row attends over
        n_blocks = -(-max(lengths) // bs)
        # Whole blocks are gathered (one index per block rather than per token); a row shorter
        # than the longest repeats block 0 at its end, hidden by the mask.
        read = torch.zeros(B, n_blocks, dtype=torch.long, device=device)
        write = torch.empty(B, T, dtype=torch.long, device=device)
        for b, sid in enumerate(self.seq_ids):
            table = cache.tables[sid]
            owned = len(table) * bs
            assert lengths[b] <= owned, f"sequence {sid} reaches position {lengths[b] - 1} but owns {owned} slots"
            used = -(-lengths[b] // bs)
            read[b, :used] = torch.tensor(table[:used], dtype=torch.long)
            write[b] = cache.slots(sid, pos[b])
        S = n_blocks * bs
        key_pos = torch.arange(S, device=device)  # (S,)
        self._positions = positions
        self._write = write.reshape(-1)
        self._read = read
        # Query at position p sees keys 0..p of its own row; keys past the row's length are padding.
        self._mask = (key_pos.view(1, 1, S) <= pos.unsqueeze(-1)).unsqueeze(1)  # (B, 1, T, S)

    def _store(self, layer: int, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> None:
        """Write the new keys/values (B, K, T, E) into their pool slots."""
        if self._positions is None or positions is not self._positions:
            self._plan(positions)
        B, K, T, E = k.shape
        blocks_k, blocks_v = self.cache.k[layer], self.cache.v[layer]  # (blocks, block size, K, E) each
        blocks_k.view(-1, K, E).index_copy_(0, self._write, k.transpose(1, 2).reshape(B * T, K, E).to(blocks_k.dtype))
        blocks_v.view(-1, K, E).index_copy_(0, self._write, v.transpose(1, 2).reshape(B * T, K, E).to(blocks_v.dtype))

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Store k/v (B, K, T, E), then attention (B, T, H, E) for queries q (B, H, T, E) at positions (B, T).

        The native kernel reads keys/values straight from the blocks; without it they are
        gathered and attended as usual. Query at position p sees keys 0..p of its row.
        """
        self._store(layer, k, v, positions)
        y = kernels.attention_paged(q, self.cache.k[layer], self.cache.v[layer], self._read, positions)
        if y is None:
            k_all, v_all = self.gather(layer)
            y = kernels.attention(q, k_all.to(q.dtype), v_all.to(q.dtype), positions)
        return y

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._store(layer, k, v, positions)
        k_all, v_all = self.gather(layer)
        return k_all.to(k.dtype), v_all.to(v.dtype), self._mask

    def gather(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, K, S, E) of every row, copied out of the blocks (slot j = position j)."""
        blocks_k, blocks_v = self.cache.k[layer], self.cache.v[layer]
        B = self._read.shape[0]
        _, _, K, E = blocks_k.shape
        S = self._read.shape[1] * self.cache.block_size
        k_all = blocks_k[self._read].view(B, S, K, E).transpose(1, 2)  # (B, K, S, E)
        v_all = blocks_v[self._read].view(B, S, K, E).transpose(1, 2)
        return k_all, v_all
