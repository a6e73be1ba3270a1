"""`llm serve`: an OpenAI-compatible HTTP server with continuous batching over a paged KV cache.

Layout, from the wire inwards:

- `app` (routes, API key), `chat`, `completions` (the two generation endpoints), `protocol`
  (pydantic request/response models), `api_errors` (OpenAI error bodies), `sse` (streaming);
- `request_options` (requests -> prompt ids + sampling options), `guided` (the grammar a
  request's tool_choice / response_format asks for), `request_stream` (one request's
  outputs from the engine thread to asyncio), `tool_stream`, `logprobs`;
- `batch_engine` (the engine thread), `scheduler` (continuous batching policy),
  `model_runner` (forward passes, sampling, speculative verification), `sequence`, `metrics`;
- `server` (load, size the KV cache, run uvicorn), `bench` (`llm bench serve`), `commands`.

The KV cache itself is `llm.infer.paged_kv`; the fast forward, sampling, grammar masks
(`llm.infer.guidance`), stop strings, quantization and speculative drafters come from `llm.infer`.
"""
