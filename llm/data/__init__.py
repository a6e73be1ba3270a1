"""Training data: text sources, tokenized shards, and batches of token windows.

`sources` turns a SOURCE string (stdlib, a local file/folder, a hub dataset) into documents;
`prepare` tokenizes them into the shard directory described in `shards`; `loader` reads
batches from it. Nothing here knows about models or training loops.

The names below load on first use (`lazy_loader`, PEP 562), so `llm data --help` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from llm.data.loader import TokenWindows, token_byte_lengths
    from llm.data.prepare import prepare_data
    from llm.data.shards import PreparedData
    from llm.data.sources import iter_texts, parse_source

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "loader": ["TokenWindows", "token_byte_lengths"],
        "prepare": ["prepare_data"],
        "shards": ["PreparedData"],
        "sources": ["iter_texts", "parse_source"],
    },
)
