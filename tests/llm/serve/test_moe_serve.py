"""`llm serve` over a Mixture-of-Experts checkpoint: greedy completions equal the engine's."""

import httpx
import torch
from serve_testkit import running_server, train_tokenizer

from llm.checkpoint import make_meta, save_checkpoint
from llm.config import load_preset
from llm.infer.engine import Engine
from llm.infer.loading import load_model
from llm.infer.sampling import SamplingParams
from llm.model import GPT


def test_serve_moe_checkpoint(tmp_path):
    tok = train_tokenizer()
    cfg = load_preset("nano-moe").model_copy(update={"vocab_size": tok.vocab_size, "n_layers": 2, "max_seq_len": 128})
    torch.manual_seed(0)
    model = GPT(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(20)  # confident greedy choices
    ck = load_model(str(save_checkpoint(tmp_path / "moe", model, cfg, tok, make_meta("pretrain"))))
    prompt = "def add(a, b):"
    want = Engine(ck.model, ck.tokenizer).generate(ck.tokenizer.encode(prompt), SamplingParams(max_tokens=8, temperature=0.0))[0]
    with running_server(ck, max_batch=4, kv_blocks=64, block_size=8) as (url, _):
        body = {"model": "nano", "prompt": [prompt, "import os"], "max_tokens": 8, "temperature": 0}
        r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    choices = sorted(r.json()["choices"], key=lambda c: c["index"])
    assert choices[0]["text"] == ck.tokenizer.decode(want.tokens)
    assert r.json()["usage"]["completion_tokens"] > 0
