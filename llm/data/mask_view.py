"""`llm data show-mask`: one rendered row, supervised tokens highlighted, counts underneath.

Reads the tokenizer and chat template of a checkpoint (no weights) and renders with the
shared ChatML renderer, so what is shown is exactly what SFT and DPO train on.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from llm.chat_template import ChatTemplate, render_chat
from llm.checkpoint import load_config
from llm.data.chat_data import DPO_FORMATS, SFT_FORMATS, load_dpo_rows, load_sft_rows
from llm.errors import DataError
from llm.hub import resolve_model
from llm.tokenizer import Tokenizer

__all__ = ["show_mask", "masked_text"]


def masked_text(tok: Tokenizer, ids: list[int], mask: list[int]) -> Text:
    """Rich text of the ids: supervised runs in bold green on a dark background, the rest dim."""
    out = Text()
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            piece = tok.decode(ids[start:i])
            out.append(piece, style="bold green on grey15" if mask[start] else "dim")
            start = i
    return out


def show_mask(source: str, index: int, fmt: str, model: str, console: Console | None = None) -> None:
    path = resolve_model(model)
    config = load_config(path)
    tok = Tokenizer.load(path)
    template = ChatTemplate(config.chat_template, config.default_system)
    if fmt in SFT_FORMATS:
        rows = load_sft_rows(source, fmt, skip_bad=True).rows
        views = [("", rows, lambda r: (r["messages"], r.get("tools")))]
    elif fmt in DPO_FORMATS:
        rows = load_dpo_rows(source, fmt, skip_bad=True).rows
        views = [
            ("chosen", rows, lambda r: (r["prompt"] + [r["chosen"]], r.get("tools"))),
            ("rejected", rows, lambda r: (r["prompt"] + [r["rejected"]], r.get("tools"))),
        ]
    else:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(SFT_FORMATS + DPO_FORMATS)}")
    if index >= len(rows):
        raise DataError(f"{source} has {len(rows)} valid rows; --index must be below {len(rows)}")
    console = console or Console()
    for label, rows_, pick in views:
        messages, tools = pick(rows_[index])
        ids, mask = render_chat(tok, messages, tools, template=template)
        if label:
            prefix, _ = render_chat(tok, messages[:-1], tools, add_generation_prompt=True, template=template)
            mask = [0] * len(prefix) + mask[len(prefix):]
            console.rule(label)
        console.print(masked_text(tok, ids, mask))
        console.print(f"[bold]{len(ids)}[/] tokens, [bold green]{sum(mask)}[/] supervised (highlighted)")
