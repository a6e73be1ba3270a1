"""AdamW groups: no weight decay on norms and embeddings, each parameter exactly once."""

import torch

from llm.config import load_preset
from llm.model import GPT
from llm.train.config import TrainSection
from llm.train.optim import build_optimizer, param_groups


def test_norms_and_embeddings_are_not_decayed():
    model = GPT(load_preset("nano").model_copy(update={"d_model": 32, "n_heads": 2, "n_kv_heads": 1, "ffn_hidden": 64}))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} == {
        n for n, p in model.named_parameters() if p.dim() == 1 or n == "tok_emb.weight"
    }
    assert all(p.dim() == 2 for p in decay["params"]) and decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0
    everything = decay["params"] + no_decay["params"]
    assert len({id(p) for p in everything}) == len(everything) == len(list(model.parameters()))
    opt = build_optimizer(model, TrainSection(weight_decay=0.1), torch.device("cpu"))
    assert opt.defaults["fused"] is True
