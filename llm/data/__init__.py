"""Training data: text sources, tokenized shards, and batches of token windows.

`sources` turns a SOURCE string (stdlib, a local file/folder, a hub dataset) into documents;
`prepare` tokenizes them into the shard directory described in `shards`; `loader` reads
batches from it. Nothing here knows about models or training loops.
"""

from llm.data.loader import TokenWindows, token_byte_lengths
from llm.data.prepare import prepare_data
from llm.data.shards import PreparedData
from llm.data.sources import iter_texts, parse_source

__all__ = ["TokenWindows", "token_byte_lengths", "prepare_data", "PreparedData", "iter_texts", "parse_source"]
