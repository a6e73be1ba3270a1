"""Training data: text sources, tokenized shards, and batches of token windows.

`sources` turns a SOURCE string (stdlib, a local file/folder, a hub dataset) into documents;
`prepare` tokenizes them into the shard directory described in `shards`; `loader` reads
batches from it. Nothing here knows about models or training loops.

The names below load on first use (PEP 562), so `llm data --help` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm.data.loader import TokenWindows, token_byte_lengths
    from llm.data.prepare import prepare_data
    from llm.data.shards import PreparedData
    from llm.data.sources import iter_texts, parse_source

_HOMES = {
    "TokenWindows": "loader",
    "token_byte_lengths": "loader",
    "prepare_data": "prepare",
    "PreparedData": "shards",
    "iter_texts": "sources",
    "parse_source": "sources",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
