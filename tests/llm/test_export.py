"""`llm export hf` checked against transformers, and the round trip through `llm import hf`.

transformers loads the exported folder and its logits equal ours (both RoPE layouts); the
HF tokenizer gives our ids; the exported Jinja chat template renders our ChatML text;
`llm import hf` of the export gives back the exported tensors bit for bit; bad input is a
one-line error that writes nothing.
"""

from __future__ import annotations

import inspect
import json
import textwrap

import pytest
import torch

from llm.chat_template import ChatTemplate, render_chat, render_chat_text
from llm.checkpoint import load_config, load_state_dict, make_meta, save_checkpoint
from llm.cli import main
from llm.config import load_preset
from llm.errors import CheckpointError, ConfigError, ModelNotFound
from llm.export import export_hf
from llm.importers import import_hf
from llm.model import GPT
from llm.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")

SAMPLES = [
    "Hello, world! The year 2024 has 366 days; pi is 3.14159.",
    "<|im_start|>user\nWhat is 17*23?<|im_end|>\n<|im_start|>assistant\n",
    "Unicode: café, naïve, 日本語のテキスト, emoji 🎉🚀, Ελληνικά, русский.",
    "def f(x):\n    return x ** 2  # square\n\n\n\tindented\ttabs   and    spaces  \n",
    "digits 0 1 22 333 4444 55555 and 1,000,000.50 and 007",
    "<|endoftext|>two docs<|endoftext|>",
]
SYSTEM = "You are a careful assistant; answer \"briefly\"."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression ✓",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
        },
    }
]
CHATS = {
    "no system": [{"role": "user", "content": "What is the capital of France?"}],
    "system": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi 日本"}],
    "tool use": [
        {"role": "user", "content": "What is 17*23?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": {"expression": "17*23"}}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "391"},
        {"role": "assistant", "content": "17 × 23 = 391."},
    ],
}


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A small BPE trained here (GPT-4-style split regex, two-digit numbers) plus the ChatML specials."""
    texts = [inspect.getsource(textwrap), inspect.getsource(json.decoder), *SAMPLES[::2]]
    return Tokenizer.train(texts, 700)


def _nano_checkpoint(path, tokenizer, seed=0, **overrides):
    """A random `nano`-preset checkpoint; norm weights randomised too, so a swapped tensor shows."""
    cfg = load_preset("nano").model_copy(update=overrides)
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(1.0, 0.2)
    return save_checkpoint(path, model, cfg, tokenizer, make_meta("pretrain"))


@pytest.fixture(scope="module", params=["interleaved", "half"])
def exported(request, tmp_path_factory, tokenizer):
    """(checkpoint, export folder) for each RoPE layout; the interleaved one also has an untied head."""
    root = tmp_path_factory.mktemp(f"export-{request.param}")
    tied = request.param == "half"
    ck = _nano_checkpoint(root / "ck", tokenizer, rope_style=request.param, tie_embeddings=tied, default_system=SYSTEM)
    return ck, export_hf(ck, root / "hf")


def _our_logits(ck_path, ids):
    from llm.checkpoint import load_checkpoint

    with torch.no_grad():
        return load_checkpoint(ck_path).model(torch.tensor([ids]))[0]


def _hf_logits(folder, ids):
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    assert type(model).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def test_transformers_logits_equal_ours(exported, tokenizer):
    ck, folder = exported
    ids = tokenizer.encode_with_special(" ".join(SAMPLES))[:200]  # long enough for RoPE to matter
    ours, theirs = _our_logits(ck, ids), _hf_logits(folder, ids)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-4
    assert ours.std().item() > 0.1  # not a degenerate all-zero comparison


def test_config_json_describes_the_model(exported):
    ck, folder = exported
    cfg = load_config(ck)
    hf = transformers.AutoConfig.from_pretrained(str(folder))
    assert hf.architectures == ["LlamaForCausalLM"]
    assert (hf.hidden_size, hf.intermediate_size, hf.num_hidden_layers) == (cfg.d_model, cfg.ffn_hidden, cfg.n_layers)
    assert (hf.num_attention_heads, hf.num_key_value_heads) == (cfg.n_heads, cfg.kv_heads)
    assert (hf.rms_norm_eps, hf.max_position_embeddings, hf.vocab_size) == (cfg.norm_eps, cfg.max_seq_len, cfg.vocab_size)
    assert hf.rope_parameters["rope_theta"] == cfg.rope_base and hf.tie_word_embeddings == cfg.tie_embeddings
    tok = Tokenizer.load(ck)
    assert hf.eos_token_id == tok.token_id("<|im_end|>") and hf.bos_token_id == tok.token_id("<|endoftext|>")
    gen = json.loads((folder / "generation_config.json").read_text())
    assert set(gen["eos_token_id"]) == {tok.token_id("<|im_end|>"), tok.token_id("<|endoftext|>")}


def test_import_of_the_export_gives_back_the_same_tensors(exported, tmp_path):
    ck, folder = exported
    back = import_hf(folder, tmp_path / "back")
    a, b = load_state_dict(ck), load_state_dict(back)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert load_config(back) == load_config(ck)
    t1, t2 = Tokenizer.load(ck), Tokenizer.load(back)
    assert (t1.pattern, t1.mergeable_ranks, t1.special_tokens) == (t2.pattern, t2.mergeable_ranks, t2.special_tokens)


def test_hf_tokenizer_gives_our_ids(exported, tokenizer):
    _, folder = exported
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    for text in SAMPLES:
        ids = tokenizer.encode_with_special(text)
        assert hf_tok.encode(text) == ids, text
        assert hf_tok.decode(ids) == text


@pytest.mark.parametrize("default_system", [None, SYSTEM], ids=["no-default", "default-system"])
def test_chat_template_renders_our_layout(tmp_path, tokenizer, default_system):
    ck = _nano_checkpoint(tmp_path / "ck", tokenizer, default_system=default_system)
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(export_hf(ck, tmp_path / "hf")))
    template = ChatTemplate("chatml", default_system)
    for name, chat in CHATS.items():
        for tools in (None, TOOLS):
            ours = render_chat_text(tokenizer, chat, tools, add_generation_prompt=True, template=template)
            theirs = hf_tok.apply_chat_template(chat, tools=tools, tokenize=False, add_generation_prompt=True)
            assert theirs == ours, (name, tools)
    ids, _ = render_chat(tokenizer, CHATS["no system"], add_generation_prompt=True, template=template)
    assert list(hf_tok.apply_chat_template(CHATS["no system"], add_generation_prompt=True, return_dict=False)) == ids
    assert load_config(import_hf(tmp_path / "hf", tmp_path / "back")).default_system == default_system


def _one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


def test_cli_round_trip(capsys, tmp_path, tokenizer):
    ck = _nano_checkpoint(tmp_path / "ck", tokenizer, rope_style="interleaved")
    main(["export", "hf", str(ck), "--out", str(tmp_path / "hf")])
    main(["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")])
    assert capsys.readouterr().out.split() == [str(tmp_path / "hf"), str(tmp_path / "back")]
    a, b = load_state_dict(ck), load_state_dict(tmp_path / "back")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_quantized_checkpoint(capsys, tmp_path, tokenizer):
    from llm.infer.quantized_checkpoint import quantize_checkpoint
    from llm.infer.quantize import QuantConfig

    q8 = quantize_checkpoint(_nano_checkpoint(tmp_path / "ck", tokenizer), tmp_path / "q8", QuantConfig(bits=8))
    line = _one_line_error(capsys, ["export", "hf", str(q8), "--out", str(tmp_path / "hf")])
    assert "quantized checkpoint (int8)" in line and "export the float checkpoint" in line
    assert not (tmp_path / "hf").exists()


def test_refuses_unmerged_adapter(capsys, tmp_path, tokenizer):
    from llm.config import AdapterConfig
    from llm.lora import apply_lora

    adapter = AdapterConfig(rank=2, alpha=4.0, targets=["q", "v"])
    cfg = load_preset("nano").model_copy(update={"adapter": adapter})
    ck = save_checkpoint(tmp_path / "ck", apply_lora(GPT(cfg), adapter), cfg, tokenizer, make_meta("sft"))
    line = _one_line_error(capsys, ["export", "hf", str(ck), "--out", str(tmp_path / "hf")])
    assert "unmerged LoRA adapter" in line and "llm lora merge" in line
    assert not (tmp_path / "hf").exists()


def test_missing_checkpoint_and_occupied_out(capsys, tmp_path, tokenizer):
    line = _one_line_error(capsys, ["export", "hf", str(tmp_path / "nope"), "--out", str(tmp_path / "hf")])
    assert "nope" in line and "no checkpoint directory at" in line
    assert not (tmp_path / "hf").exists()
    ck = _nano_checkpoint(tmp_path / "ck", tokenizer)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    line = _one_line_error(capsys, ["export", "hf", str(ck), "--out", str(tmp_path / "busy")])
    assert "--force" in line
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]
    with pytest.raises(ModelNotFound):
        export_hf("no-such-model", tmp_path / "x")
    with pytest.raises(ConfigError, match="not empty"):
        export_hf(ck, tmp_path / "busy")
    with pytest.raises(ConfigError, match="the checkpoint being exported"):
        export_hf(ck, ck, force=True)
    assert load_config(ck).name == "nano"


def test_failed_write_leaves_nothing(monkeypatch, tmp_path, tokenizer):
    import llm.export.hf as hf_export

    ck = _nano_checkpoint(tmp_path / "ck", tokenizer)
    export_hf(ck, tmp_path / "hf")
    before = sorted(p.name for p in (tmp_path / "hf").iterdir())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(hf_export, "save_file", broken)
    with pytest.raises(OSError):
        export_hf(ck, tmp_path / "hf", force=True)
    with pytest.raises(OSError):
        export_hf(ck, tmp_path / "fresh")
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == before  # the old export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "hf"]  # no temp folder, no partial "fresh"


def test_corrupt_checkpoint_is_a_checkpoint_error(tmp_path, tokenizer):
    ck = _nano_checkpoint(tmp_path / "ck", tokenizer)
    (ck / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        export_hf(ck, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


@pytest.mark.model
def test_smollm2_export_matches_transformers_and_round_trips(smollm2_path, smollm2, tmp_path):
    folder = export_hf("smollm2-135m-instruct", tmp_path / "hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    for text in SAMPLES:
        assert hf_tok.encode(text) == smollm2.tokenizer.encode_with_special(text), text
    chat = CHATS["no system"]
    ids, _ = render_chat(smollm2.tokenizer, chat, add_generation_prompt=True,
                         template=ChatTemplate("chatml", smollm2.config.default_system))
    prompt = hf_tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert hf_tok.encode(prompt) == ids
    with torch.no_grad():
        ours = smollm2.model(torch.tensor([ids]))[0]
    assert (ours - _hf_logits(folder, ids)).abs().max().item() < 1e-4

    back = import_hf(folder, tmp_path / "back")
    a, b = load_state_dict(smollm2_path), load_state_dict(back)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_config(back) == smollm2.config
