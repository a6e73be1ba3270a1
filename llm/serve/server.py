"""`llm serve`: load a model, size the KV cache, build the engine and app, run uvicorn.

Everything a user can get wrong (unknown model, bad draft model, a KV budget too small for
one block) is an `LLMError` raised before the port is bound, so the command fails with one
line instead of a server that cannot answer.
"""

from __future__ import annotations

import socket
import time

import torch
import uvicorn
from fastapi import FastAPI

from llm.chat_template import ChatTemplate
from llm.checkpoint import Checkpoint
from llm.errors import ConfigError, InferenceError
from llm.infer.loading import load_model, stop_ids
from llm.infer.drafters import Drafter, ModelDrafter, PromptLookupDrafter, check_same_tokenizer
from llm.infer.guidance import Guidance
from llm.infer.inference_model import DTYPES, PREFILL_GEMM_MIN_TOKENS, InferenceModel
from llm.infer.paged_kv import PagedKVCache
from llm.infer.quantize import QuantConfig, is_quantized, quantize_model
from llm.serve.app import create_app
from llm.serve.batch_engine import BatchEngine
from llm.serve.config import ServeConfig
from llm.serve.forward import forward_logits
from llm.serve.request_log import configure_logging, server_logger
from llm.serve.request_options import ServedModel

__all__ = ["build_app", "serve", "warm_up"]


def build_app(config: ServeConfig, checkpoint: Checkpoint | None = None) -> tuple[FastAPI, BatchEngine]:
    """The app and its (not yet started: the app's lifespan starts it) engine."""
    if config.threads:
        torch.set_num_threads(config.threads)
    ck = checkpoint or load_model(config.model, dtype=config.dtype)
    net = _inference_model(ck, config)
    max_len = min(config.max_model_len or ck.config.max_seq_len, ck.config.max_seq_len)
    drafter = _drafter(config, ck, max_len)
    kv_blocks = config.kv_blocks or _blocks_for_budget(ck, config, max_len)
    engine = BatchEngine(
        net,
        ck.tokenizer,
        end_ids=set(stop_ids(ck)),
        kv_blocks=kv_blocks,
        block_size=config.block_size,
        max_model_len=max_len,
        max_batch=config.max_batch,
        max_queue=config.max_queue,
        max_prefill_tokens=config.max_prefill_tokens,
        drafter=drafter,
        num_speculative=config.num_speculative_tokens,
        prefix_caching=config.prefix_cache,
    )
    served = ServedModel(
        name=config.name,
        tokenizer=ck.tokenizer,
        template=ChatTemplate(ck.config.chat_template, ck.config.default_system),
        max_model_len=engine.max_model_len,
        guidance=Guidance(ck.tokenizer, engine.end_ids),
        guided_tools=config.guided_tools,
        created=int(time.time()),
    )
    warm_up(engine)
    return create_app(engine, served, config.api_key, int(config.max_body_mb * 2**20)), engine


def serve(config: ServeConfig) -> None:
    """Load, then serve until stopped; start-up and one line per finished request go to stderr."""
    configure_logging(config.log_level, config.quiet)
    _check_port_free(config.host, config.port)
    server_logger.info(f"loading {config.model} ...")
    app, engine = build_app(config)
    cache = engine.cache
    server_logger.info(
        f"serving {config.name!r}: context {engine.max_model_len} tokens, KV cache {cache.num_blocks} blocks x "
        f"{cache.block_size} tokens{', prefix caching' if cache.prefix_caching else ''}, batch up to "
        f"{engine.max_batch}; http://{config.host}:{config.port}/v1"
    )
    # uvicorn's own start-up and access lines only at debug: the request lines above say more
    uvicorn_level = config.log_level if config.log_level in ("debug", "error") else "warning"
    uvicorn.run(app, host=config.host, port=config.port, log_level=uvicorn_level, access_log=config.log_level == "debug")


def _blocks_for_budget(ck: Checkpoint, config: ServeConfig, max_len: int) -> int:
    """Blocks that fit the memory budget, but no more than a full batch of full-length sequences can use."""
    per_block = PagedKVCache.bytes_per_block(ck.config, config.block_size, torch.float32)  # float32 activations
    blocks = (config.kv_memory_mb * 2**20) // per_block
    if blocks < 1:
        raise ConfigError(
            f"--kv-memory-mb {config.kv_memory_mb} is less than one KV block ({per_block / 2**20:.1f} MiB); raise it"
        )
    return int(min(blocks, config.max_batch * -(-max_len // config.block_size)))


def _check_port_free(host: str, port: int) -> None:
    """Fail before the (slow) model load when the address is taken; uvicorn would only say so after."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host") from exc


def _drafter(config: ServeConfig, ck: Checkpoint, max_len: int) -> Drafter | None:
    if config.prompt_lookup:
        return PromptLookupDrafter()
    if not config.draft:
        return None
    draft = load_model(config.draft, dtype=config.dtype)
    try:
        check_same_tokenizer(ck.tokenizer, draft.tokenizer)
    except InferenceError as exc:
        raise ConfigError(f"--draft {config.draft}: {exc}") from exc
    if draft.config.max_seq_len < max_len:
        raise ConfigError(
            f"draft model {config.draft} handles {draft.config.max_seq_len} tokens but the server allows {max_len}; "
            f"pass --max-model-len {draft.config.max_seq_len}"
        )
    # One static cache, reused across sequences: the drafter keeps whatever prefix a new
    # sequence shares with the last one (a common system prompt) and re-reads the rest.
    drafter = ModelDrafter(_inference_model(draft, config), draft.tokenizer)
    drafter.start(max_len)
    return drafter


def _inference_model(ck: Checkpoint, config: ServeConfig) -> InferenceModel:
    """The checkpoint's GPT, quantized if asked (in place), re-laid out for fast inference."""
    if config.quantize and not is_quantized(ck.model):
        quantize_model(ck.model, QuantConfig(bits=config.quantize))
    dtype = config.dtype or ("bfloat16" if ck.config.dtype == "bfloat16" else "float32")
    net = InferenceModel.from_gpt(ck.model, dtype=dtype)
    net.prefill_dtype = DTYPES[config.prefill_dtype]
    return net


@torch.inference_mode()
def warm_up(engine: BatchEngine) -> None:
    """One forward pass before the port opens: the native kernels build on first use (once per
    machine, cached), and /health must not say ready while that takes a minute. With a bf16
    prefill, a pass of a prompt chunk's length also makes the bf16 copies of the matrices."""
    cache, net = engine.cache, engine.runner.model
    chunked = getattr(net, "prefill_dtype", torch.float32) != torch.float32
    n = min(PREFILL_GEMM_MIN_TOKENS, engine.max_model_len - 1) if chunked else 1
    cache.reserve(-1, n)
    try:
        forward_logits(net, torch.zeros(1, n, dtype=torch.long), torch.arange(n).unsqueeze(0), cache.batch([-1]))
    finally:
        cache.free(-1)
