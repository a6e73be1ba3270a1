"""Settings of `llm serve`: one pydantic model whose field names are the CLI options.

This module knows settings and their limits; it loads nothing and starts nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ServeConfig"]


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Checkpoint directory or pulled model name.")
    served_model_name: str | None = Field(None, description="Name clients pass as `model` (default: --model).")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(None, description="When set, every route but /health needs `Bearer <key>`.")
    dtype: Literal["float32", "bfloat16"] | None = None
    quantize: Literal[8, 4] | None = Field(None, description="Weight-only int8 or int4 quantization.")
    draft: str | None = Field(None, description="Draft model for speculative decoding of a single stream.")
    prompt_lookup: bool = Field(False, description="Speculate by looking up n-grams of the context itself.")
    num_speculative_tokens: int = Field(4, ge=1, le=16)
    max_batch: int = Field(16, ge=1, le=256, description="Sequences decoded together per step.")
    max_queue: int = Field(256, ge=0, description="Waiting sequences before new requests get 429.")
    kv_blocks: int | None = Field(None, ge=1, description="KV cache blocks (default: from --kv-memory).")
    kv_memory_mb: int = Field(512, ge=1, description="KV cache budget in MiB when --kv-blocks is not given.")
    block_size: int = Field(16, ge=1, le=1024)
    max_model_len: int | None = Field(None, ge=2, description="Context limit (default: the model's).")
    max_prefill_tokens: int = Field(64, ge=16, description="Prompt tokens computed per engine step.")
    prefill_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="bfloat16: prompt chunks of 32+ tokens through bf16 GEMMs (decoding stays float32)."
    )
    prefix_cache: bool = Field(
        True, description="Reuse the KV blocks of earlier requests' common prefixes (automatic prefix caching)."
    )
    max_body_mb: float = Field(8.0, gt=0, description="Largest request body in MiB; bigger ones get 413.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice).")
    guided_tools: bool = Field(
        False, description="Constrain tool-call blocks under tool_choice auto too (required and named always are)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="info: start-up and one line per finished request; debug adds uvicorn's access log."
    )
    quiet: bool = Field(False, description="Only warnings and errors (no start-up or request lines).")

    @model_validator(mode="after")
    def _one_speculation(self) -> ServeConfig:
        if self.draft and self.prompt_lookup:
            raise ValueError("choose one of --draft MODEL and --prompt-lookup")
        return self

    @property
    def name(self) -> str:
        return self.served_model_name or self.model
