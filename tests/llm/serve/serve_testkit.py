"""Helpers for the server tests: a tiny `nano`-preset checkpoint and servers on free ports.

The checkpoint is real (random init, tokenizer trained on a tiny corpus) and then
fine-tuned for a few seconds on one tool-use conversation until it reproduces it under
greedy decoding. That makes the tool round trip deterministic without any scripted
generator: the server runs the same code path as for any model, and the test checks the
parse → tool result → answer loop end to end.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import torch

from llm.chat_template import render_chat, render_chat_text
from llm.checkpoint import make_meta, save_checkpoint
from llm.config import load_preset
from llm.model import GPT
from llm.tokenizer import Tokenizer

SYSTEM = "You are a helpful assistant."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    }
]
QUESTION = "What is 17*23?"
CALL_ARGS = {"expression": "17*23"}
ANSWER = "17*23 = 391."
PROSE = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Paris is the capital of France and Berlin is the capital of Germany.",
    "A small model learns to copy what it has seen many times before.",
]


def tool_conversations() -> tuple[list[dict], list[dict]]:
    """(question -> tool call) and (question, call, result -> answer), in OpenAI message form."""
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "17*23"}'}}
        ],
    }
    second = first + [call, {"role": "tool", "tool_call_id": "call_1", "content": "391"}]
    return first + [call], second + [{"role": "assistant", "content": ANSWER}]


def train_tokenizer() -> Tokenizer:
    boot = Tokenizer.train(PROSE, 300)
    convs = tool_conversations()
    texts = [render_chat_text(boot, c, tools=TOOLS) for c in convs] * 8 + PROSE * 8
    return Tokenizer.train(texts, 700)


def finetune(model: GPT, tok: Tokenizer, max_steps: int = 200) -> None:
    """Supervised fine-tuning on the assistant turns (loss mask) of the two tool conversations."""
    rows = [render_chat(tok, c, tools=TOOLS) for c in tool_conversations()]
    T = max(len(ids) for ids, _ in rows)
    idx = torch.zeros(len(rows), T, dtype=torch.long)
    tgt = torch.full((len(rows), T), -1, dtype=torch.long)
    for r, (ids, mask) in enumerate(rows):
        idx[r, : len(ids)] = torch.tensor(ids)
        tgt[r, : len(ids) - 1] = torch.tensor([t if m else -1 for t, m in zip(ids[1:], mask[1:])])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(max_steps):
        _, loss = model(idx, targets=tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.01:
            break
    model.eval()


@contextmanager
def one_torch_thread():
    """One intra-op thread: on a shared, loaded 2-core machine a second OpenMP thread mostly
    spins and waits (training the fixture took 10x longer with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_tool_checkpoint(path):
    """Write the fine-tuned nano checkpoint to `path` (about 5 s on one core)."""
    torch.manual_seed(0)
    tok = train_tokenizer()
    cfg = load_preset("nano").model_copy(update={"vocab_size": tok.vocab_size, "name": "nano-tools"})
    model = GPT(cfg)
    with one_torch_thread():
        finetune(model, tok)
    return save_checkpoint(path, model, cfg, tok, make_meta("sft", note="test fixture: memorises one tool conversation"))


def run_concurrently(fn, items) -> list:
    """fn(item) for every item, each in its own thread, all in flight at once; results in order."""
    results = [None] * len(items)

    def one(i):
        results[i] = fn(items[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(checkpoint, name="nano", **options):
    """An `llm serve` app for `checkpoint` under uvicorn in a thread; yields (base_url, engine)."""
    import uvicorn

    from llm.serve.config import ServeConfig
    from llm.serve.server import build_app

    port = free_port()
    config = ServeConfig(model=str(checkpoint.path), served_model_name=name, port=port, **options)
    app, engine = build_app(config, checkpoint)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    assert httpx.get(f"{url}/health").status_code == 200
    try:
        yield url, engine
    finally:
        server.should_exit = True
        thread.join(30)
