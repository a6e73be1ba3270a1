"""SmolLM2 import checked against Hugging Face transformers, plus importer error handling."""

import numpy as np
import pytest
import torch

from llm.chat_template import ChatTemplate, render_chat
from llm.errors import UnsupportedModel
from llm.infer.generate import generate_text
from llm.hub import REGISTRY, source_file
from llm.importers import import_gguf, import_hf

PROMPTS = [
    "What is the capital of France?",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "Numbers 12345, émojis 🎉 and 日本語 text.",
]


@pytest.fixture(scope="module")
def gguf_file(smollm2_path):
    path = source_file(REGISTRY["smollm2-135m-instruct"])
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def hf_model(gguf_file):
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32
    ).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    return model, tok


LOGIT_TOLERANCE = 1e-4
"""The README's claim: max |ours - transformers| over every logit of every prompt is below this."""


@pytest.mark.model
def test_logits_match_transformers(smollm2, hf_model):
    hf, hf_tok = hf_model
    worst = 0.0
    for prompt in PROMPTS:
        ids = smollm2.tokenizer.encode(prompt)
        assert ids == hf_tok.encode(prompt)
        with torch.no_grad():
            ours, _ = smollm2.model(torch.tensor([ids]))
            theirs = hf(torch.tensor([ids])).logits
        assert ours.shape == theirs.shape
        # The same next-token choice everywhere, not only close numbers.
        assert torch.equal(ours.argmax(-1), theirs.argmax(-1)), prompt
        worst = max(worst, (ours - theirs).abs().max().item())
    assert worst < LOGIT_TOLERANCE, f"max abs logit difference {worst:.2e} >= {LOGIT_TOLERANCE:g}"


@pytest.mark.model
def test_chat_template_matches_transformers(smollm2, hf_model):
    _, hf_tok = hf_model
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids, _ = render_chat(smollm2.tokenizer, msgs, add_generation_prompt=True,
                         template=ChatTemplate("chatml", smollm2.config.default_system))
    assert ids == list(hf_tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))


@pytest.mark.model
def test_greedy_chat_answer(smollm2):
    assert generate_text(smollm2, chat="What is the capital of France?", max_tokens=32) == "The capital of France is Paris."


@pytest.mark.model
@pytest.mark.slow
def test_hf_folder_import_equals_gguf_import(smollm2, hf_model, tmp_path):
    hf, hf_tok = hf_model
    # transformers refuses save_pretrained() on a GGUF-loaded model, so write the folder by hand.
    from safetensors.torch import save_file

    (tmp_path / "hf").mkdir()
    state = {k: v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(tmp_path / "hf" / "model.safetensors"))
    hf.config.to_json_file(str(tmp_path / "hf" / "config.json"))
    hf_tok.save_pretrained(tmp_path / "hf")
    from llm.checkpoint import load_checkpoint

    ck = load_checkpoint(import_hf(tmp_path / "hf", tmp_path / "ck"))
    assert ck.config.rope_style == "half"
    ids = smollm2.tokenizer.encode(PROMPTS[1])
    assert ck.tokenizer.encode(PROMPTS[1]) == ids
    with torch.no_grad():
        a, _ = ck.model(torch.tensor([ids]))
        b, _ = smollm2.model(torch.tensor([ids]))
    assert (a - b).abs().max().item() < 1e-3


def _write_gguf(path, arch="gpt2"):
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_unsupported_architecture_is_named(tmp_path):
    f = tmp_path / "m.gguf"
    _write_gguf(f, "gpt2")
    with pytest.raises(UnsupportedModel, match=r"m\.gguf: architecture 'gpt2' is not supported"):
        import_gguf(f, tmp_path / "out")


def test_corrupt_and_missing_gguf(tmp_path):
    f = tmp_path / "bad.gguf"
    f.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(UnsupportedModel, match="bad.gguf"):
        import_gguf(f, tmp_path / "out")
    with pytest.raises(UnsupportedModel, match="no such GGUF"):
        import_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hf_import_errors(tmp_path):
    with pytest.raises(UnsupportedModel, match="not a directory"):
        import_hf(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "gpt_neox"}')
    with pytest.raises(UnsupportedModel, match="gpt_neox"):
        import_hf(tmp_path / "m", tmp_path / "out")
