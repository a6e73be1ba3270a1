"""`data_stats`: what a synthetic data file holds — families, profiles, turns, tokens, calls per turn.

Reads SFT rows (`messages`) and DPO pairs (`prompt` / `chosen` / `rejected`) alike.
Tokens are iclaw's offline estimate of the SmolLM2 count (`iclaw.tokens`, within about
0.95-1.2x of the true count), including the tool schemas and the ChatML framing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from statistics import mean

from iclaw.tokens import EstimatingCounter, count_messages
from rich.console import Console
from rich.table import Table

from evals.errors import SpecError

__all__ = ["data_stats", "print_stats"]


def _rows(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}:{number}: not a JSON line ({exc.msg})") from exc
        if not isinstance(row, dict) or not ({"messages"} <= set(row) or {"prompt", "chosen", "rejected"} <= set(row)):
            raise SpecError(f"{path}:{number}: neither an SFT row (messages) nor a DPO pair (prompt, chosen, rejected)")
        rows.append(row)
    if not rows:
        raise SpecError(f"{path} holds no rows")
    return rows


def data_stats(path: Path) -> dict:
    """Counts and averages over the rows of one JSONL file."""
    rows = _rows(path)
    counter = EstimatingCounter()
    kind = "sft" if "messages" in rows[0] else "dpo"
    families: Counter[str] = Counter()
    profiles: Counter[str] = Counter()
    rejections: Counter[str] = Counter()
    calls_per_turn: Counter[int] = Counter()
    turns, tokens, system_tokens = [], [], []
    for row in rows:
        meta = row.get("meta") or {}
        families[meta.get("family", "?")] += 1
        profiles[meta.get("profile", "?")] += 1
        if kind == "dpo":
            rejections[meta.get("rejection", "?")] += 1
        messages = row["messages"] if kind == "sft" else [*row["prompt"], row["chosen"]]
        tools = row.get("tools") or None
        assistant = [m for m in messages if m.get("role") == "assistant"]
        turns.append(len(assistant))
        for message in assistant:
            calls_per_turn[len(message.get("tool_calls") or [])] += 1
        tokens.append(count_messages(counter, messages, tools))
        system = [m for m in messages[:1] if m.get("role") == "system"]
        system_tokens.append(count_messages(counter, system, tools))
    call_turns = {k: v for k, v in calls_per_turn.items() if k > 0}
    return {
        "file": str(path),
        "kind": kind,
        "rows": len(rows),
        "families": dict(sorted(families.items())),
        "profiles": dict(sorted(profiles.items())),
        "rejections": dict(sorted(rejections.items())),
        "assistant_turns": {"mean": round(mean(turns), 2), "min": min(turns), "max": max(turns)},
        "tokens": {"mean": round(mean(tokens)), "max": max(tokens), "total": sum(tokens),
                   "system_and_tools_mean": round(mean(system_tokens))},
        "calls_per_turn": {
            "histogram": {str(k): v for k, v in sorted(calls_per_turn.items())},
            "mean_when_calling": round(sum(k * v for k, v in call_turns.items()) / max(1, sum(call_turns.values())), 2),
        },
    }


def print_stats(stats: dict, console: Console) -> None:
    head = Table(title=f"{stats['file']}: {stats['rows']} {stats['kind'].upper()} rows", show_header=False)
    t, k = stats["assistant_turns"], stats["tokens"]
    head.add_row("assistant turns per row", f"mean {t['mean']}, min {t['min']}, max {t['max']}")
    head.add_row("tokens per row (estimate)", f"mean {k['mean']}, max {k['max']}, total {k['total']}")
    head.add_row("  of which system + tools", f"mean {k['system_and_tools_mean']}")
    hist = ", ".join(f"{n} call(s): {c}" for n, c in stats["calls_per_turn"]["histogram"].items())
    head.add_row("calls per assistant turn", f"{hist} (mean when calling {stats['calls_per_turn']['mean_when_calling']})")
    head.add_row("profiles", ", ".join(f"{p}: {c}" for p, c in stats["profiles"].items()))
    console.print(head)
    families = Table("family", "rows")
    for family, count in stats["families"].items():
        families.add_row(family, str(count))
    console.print(families)
    if stats["rejections"]:
        kinds = Table("rejected step", "pairs")
        for kind, count in stats["rejections"].items():
            kinds.add_row(kind, str(count))
        console.print(kinds)
