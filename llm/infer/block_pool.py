"""The KV block pool: reference-counted blocks, and a content index for automatic prefix caching.

Automatic prefix caching (vLLM's APC; SGLang's RadixAttention does the same with a tree) at
our scale: a *full* block whose keys/values are computed is registered under its content,
the hash of (its parent block's hash, its token ids). A new sequence walks its tokens one
block at a time and takes every block already registered for that exact prefix, so only
the rest of its prompt is computed. Keys/values at a position depend on every token before
it, which is why a block's identity includes its parent: two blocks of equal tokens share
only under an identical prefix.

- **Reference counts**: a block is held by every sequence whose table lists it; a shared
  block is only ever read (sequences write at positions past their cached prefix).
- **Kept after use**: when the last holder lets go, a registered block keeps its contents
  and joins an LRU list of idle blocks; a block with no registered contents goes back to
  the free list. Allocation takes free blocks first, then evicts the least recently used
  idle block (its registration is dropped). A sequence's blocks are released tail first,
  so the deepest block of a prefix is evicted before its parents.
- **Hash collisions are harmless**: the hash only picks a bucket; a block matches when
  its tokens and its parent's identity are equal too. Parents are identified by a serial
  number given at registration, never reused, so a child whose parent was evicted (and
  whose block id was reused for other contents) can never match again.

With caching off nothing is registered and the pool is a plain free list. This module knows
block ids, token ids and counts; nothing about tensors, sequences or scheduling.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from llm.errors import InferenceError

__all__ = ["BlockPool", "OutOfBlocks", "BlockKey", "PrefixHit", "HashFn", "block_hash"]

# A block's hash from its parent's hash (None for the first block) and its token ids.
HashFn = Callable[[int | None, tuple[int, ...]], int]


def block_hash(parent: int | None, tokens: tuple[int, ...]) -> int:
    """Python's tuple hash: fast, and collisions only cost a comparison (see the module docstring)."""
    return hash((parent, tokens))


class OutOfBlocks(InferenceError):
    """The pool has fewer free blocks than a sequence needs; the scheduler preempts or waits."""


@dataclass(frozen=True)
class BlockKey:
    """Where a registered block sits in a prefix chain: its hash and the serial number of its contents."""

    hash: int
    serial: int


_ROOT = BlockKey(hash=0, serial=0)  # the parent of a sequence's first block


@dataclass
class _Contents:
    key: BlockKey
    parent: int  # serial number of the parent's contents (0: first block)
    tokens: tuple[int, ...]


@dataclass
class PrefixHit:
    """Registered blocks that hold a prefix of some tokens, in order; `idle` of them are held by nobody."""

    blocks: list[int] = field(default_factory=list)
    keys: list[BlockKey] = field(default_factory=list)
    idle: int = 0


class BlockPool:
    def __init__(self, num_blocks: int, hash_fn: HashFn = block_hash) -> None:
        if num_blocks < 1:
            raise InferenceError(f"the KV cache needs at least one block, got {num_blocks}")
        self.num_blocks = num_blocks
        self.hash_fn = hash_fn
        self.refs = [0] * num_blocks
        # Popped from the end: the most recently freed block is reused first (it is warm in cache).
        self._free = list(range(num_blocks - 1, -1, -1))
        self._idle: OrderedDict[int, None] = OrderedDict()  # registered, unheld; least recently used first
        self._contents: dict[int, _Contents] = {}  # block -> what it holds, for registered blocks
        self._index: dict[int, list[int]] = {}  # hash -> registered blocks (several only on a collision)
        self._serials = 0
        self.evictions = 0

    @property
    def num_free(self) -> int:
        """Blocks `allocate` can hand out: empty ones plus idle cached ones."""
        return len(self._free) + len(self._idle)

    @property
    def num_used(self) -> int:
        """Blocks held by at least one sequence."""
        return self.num_blocks - self.num_free

    @property
    def num_cached(self) -> int:
        """Blocks whose contents are registered (held or idle)."""
        return len(self._contents)

    @property
    def num_idle(self) -> int:
        return len(self._idle)

    def allocate(self, n: int) -> list[int]:
        """n empty blocks, each held once; evicts idle cached blocks when the free list runs out."""
        if n > self.num_free:
            raise OutOfBlocks(f"need {n} KV blocks but only {self.num_free} of {self.num_blocks} are free")
        taken = []
        for _ in range(n):
            if self._free:
                block = self._free.pop()
            else:
                block, _ = self._idle.popitem(last=False)
                self._unregister(block)
                self.evictions += 1
            self.refs[block] = 1
            taken.append(block)
        return taken

    def release(self, blocks: list[int]) -> None:
        """Drop one hold on each block, tail first; unheld blocks become idle (registered) or free."""
        for block in reversed(blocks):
            assert self.refs[block] > 0, f"block {block} released more often than held"
            self.refs[block] -= 1
            if self.refs[block] == 0:
                if block in self._contents:
                    self._idle[block] = None
                else:
                    self._free.append(block)

    def hold(self, blocks: list[int]) -> None:
        """One more hold on each of these registered blocks (a new sequence shares them)."""
        for block in blocks:
            assert block in self._contents, f"block {block} is not registered and cannot be shared"
            if self.refs[block] == 0:
                del self._idle[block]
            self.refs[block] += 1

    def lookup(self, tokens: list[int], block_size: int, max_blocks: int) -> PrefixHit:
        """The registered blocks holding the longest prefix of `tokens` (at most `max_blocks`); changes nothing."""
        hit = PrefixHit()
        parent = _ROOT
        for b in range(max_blocks):
            chunk = tuple(tokens[b * block_size : (b + 1) * block_size])
            if len(chunk) < block_size:
                break
            block = self._find(parent, chunk)
            if block is None:
                break
            parent = self._contents[block].key
            hit.blocks.append(block)
            hit.keys.append(parent)
            hit.idle += self.refs[block] == 0
        return hit

    def register(self, block: int, parent: BlockKey | None, tokens: tuple[int, ...]) -> BlockKey:
        """Record that a held, full block holds `tokens` after the prefix ending at `parent` (None: first block).

        Returns the key of these contents. When equal contents are registered already (two
        sequences computed the same prefix side by side) that block's key is returned and
        this block stays unregistered: it is freed, not cached, when its holders let go.
        """
        parent = parent or _ROOT
        existing = self._find(parent, tokens)
        if existing is not None:
            return self._contents[existing].key
        assert self.refs[block] > 0 and block not in self._contents, f"block {block} cannot be registered"
        self._serials += 1
        key = BlockKey(self.hash_fn(parent.hash if parent.serial else None, tokens), self._serials)
        self._contents[block] = _Contents(key, parent.serial, tokens)
        self._index.setdefault(key.hash, []).append(block)
        return key

    def _find(self, parent: BlockKey, tokens: tuple[int, ...]) -> int | None:
        h = self.hash_fn(parent.hash if parent.serial else None, tokens)
        for block in self._index.get(h, ()):
            c = self._contents[block]
            if c.parent == parent.serial and c.tokens == tokens:
                return block
        return None

    def _unregister(self, block: int) -> None:
        c = self._contents.pop(block)
        bucket = self._index[c.key.hash]
        bucket.remove(block)
        if not bucket:
            del self._index[c.key.hash]
