"""Post-training rows: load them through `datasets`, convert every format to one shape, check them.

SFT rows become `{"messages": [...], "tools": [...] | None}` (OpenAI chat shape);
`sharegpt` (`conversations` of `from`/`value`) and `alpaca` (`instruction`/`input`/`output`)
are converted on load. DPO rows become `{"prompt": [...], "chosen": {...}, "rejected":
{...}, "tools": ...}`; `hh-rlhf` (two "\\n\\nHuman: … \\n\\nAssistant: …" transcripts) and
`ultrafeedback` (`prompt` + `chosen`/`rejected` message lists) are converted on load.

A bad row (a missing or unknown role, a malformed tool call, nothing for the assistant to
learn) is reported with its row number; loading stops with one line naming the first bad
rows unless `skip_bad` is set. This module knows rows and messages; nothing about tokens.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm.errors import DataError

__all__ = ["SFT_FORMATS", "DPO_FORMATS", "LoadedRows", "load_sft_rows", "load_dpo_rows", "read_records"]

SFT_FORMATS = ("messages", "sharegpt", "alpaca")
DPO_FORMATS = ("pairs", "hh-rlhf", "ultrafeedback")
_ROLES = ("system", "user", "assistant", "tool")
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "tool": "tool", "function_response": "tool", "observation": "tool"}
_FILE_KINDS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass
class LoadedRows:
    rows: list[dict]
    source: str
    bad: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason), 1-based


def read_records(source: str | Path, split: str = "train") -> list[dict]:
    """Every record of a JSON/JSONL/Parquet file or a hub dataset name, read with `datasets`."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError("the `datasets` package is needed to read post-training data; pip install datasets") from exc
    path = Path(source).expanduser()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(logging.CRITICAL)  # its parse errors become our one-line DataError
    try:
        if path.exists():
            kind = _FILE_KINDS.get(path.suffix.lower())
            if kind is None or path.is_dir():
                raise DataError(f"{path}: expected a .json, .jsonl or .parquet file")
            ds = datasets.load_dataset(kind, data_files=str(path), split="train")
        elif "/" in str(source) and not str(source).startswith((".", "/")):
            ds = datasets.load_dataset(str(source), split=split)
        else:
            raise DataError(f"{source}: no such file (and not a hub dataset name such as org/name)")
    except DataError:
        raise
    except Exception as exc:  # datasets raises many unrelated types for a malformed file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source}: cannot read it as {path.suffix or 'a dataset'} ({first[:200]})") from exc
    return [dict(r) for r in ds]


def load_sft_rows(source: str | Path, fmt: str = "messages", skip_bad: bool = False) -> LoadedRows:
    if fmt not in SFT_FORMATS:
        raise DataError(f"unknown SFT format {fmt!r}; choose one of {', '.join(SFT_FORMATS)}")
    convert = {"messages": _from_messages, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca}[fmt]
    return _convert_all(source, convert, _check_sft, skip_bad, fmt)


def load_dpo_rows(source: str | Path, fmt: str = "pairs", skip_bad: bool = False) -> LoadedRows:
    if fmt not in DPO_FORMATS:
        raise DataError(f"unknown DPO format {fmt!r}; choose one of {', '.join(DPO_FORMATS)}")
    convert = {"pairs": _from_pairs, "hh-rlhf": _from_hh, "ultrafeedback": _from_ultrafeedback}[fmt]
    return _convert_all(source, convert, _check_dpo, skip_bad, fmt)


def _convert_all(
    source: str | Path,
    convert: Callable[[dict], dict],
    check: Callable[[dict], None],
    skip_bad: bool,
    fmt: str,
) -> LoadedRows:
    records = read_records(source)
    if not records:
        raise DataError(f"{source}: no rows")
    out = LoadedRows(rows=[], source=str(source))
    for i, record in enumerate(records, start=1):
        try:
            row = convert(record)
            check(row)
        except _BadRow as exc:
            out.bad.append((i, str(exc)))
            continue
        out.rows.append(row)
    if out.bad and not skip_bad:
        shown = "; ".join(f"row {n}: {why}" for n, why in out.bad[:3])
        more = f" (and {len(out.bad) - 3} more)" if len(out.bad) > 3 else ""
        raise DataError(
            f"{source}: {len(out.bad)} of {len(records)} rows are not valid {fmt!r} rows - {shown}{more}; "
            "fix them, pick the right --format, or pass --skip-bad to leave them out"
        )
    if not out.rows:
        raise DataError(f"{source}: none of its {len(records)} rows is a valid {fmt!r} row")
    return out


class _BadRow(Exception):
    pass


# ---- SFT formats --------------------------------------------------------------------------


def _tools(record: dict) -> list | None:
    tools = record.get("tools")
    if isinstance(tools, str):  # some exports store the list as a JSON string
        try:
            tools = json.loads(tools) if tools.strip() else None
        except json.JSONDecodeError as exc:
            raise _BadRow("tools is a string that is not JSON") from exc
    if tools is not None and not isinstance(tools, list):
        raise _BadRow("tools must be a list of tool schemas")
    return tools or None


def _from_messages(record: dict) -> dict:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRow('missing "messages" (a non-empty list)')
    return {"messages": [_clean_message(m) for m in messages], "tools": _tools(record)}


def _clean_message(m: Any) -> dict:
    """Drop the None fields that Arrow adds when rows have different keys."""
    if not isinstance(m, dict):
        raise _BadRow(f"a message is {type(m).__name__}, not an object")
    return {k: v for k, v in m.items() if v is not None}


def _from_sharegpt(record: dict) -> dict:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise _BadRow('missing "conversations" (a list of {"from", "value"})')
    messages = []
    for t in turns:
        if not isinstance(t, dict) or "from" not in t:
            raise _BadRow('a turn lacks "from"')
        role = _SHAREGPT_ROLES.get(str(t["from"]).lower())
        if role is None:
            raise _BadRow(f"unknown role {t['from']!r} (known: {', '.join(_SHAREGPT_ROLES)})")
        messages.append({"role": role, "content": t.get("value") or "", **({"name": "tool"} if role == "tool" else {})})
    system = record.get("system")
    if isinstance(system, str) and system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return {"messages": messages, "tools": _tools(record)}


def _from_alpaca(record: dict) -> dict:
    instruction, output = record.get("instruction"), record.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        raise _BadRow('an alpaca row needs string "instruction" and "output"')
    extra = record.get("input")
    user = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": output}], "tools": None}


def _check_messages(messages: list[dict], tools: list | None) -> None:
    ids: set[str] = set()
    for j, m in enumerate(messages):
        role = m.get("role")
        if role is None:
            raise _BadRow(f"message {j} has no role")
        if role not in _ROLES:
            raise _BadRow(f"message {j} has unknown role {role!r} (known: {', '.join(_ROLES)})")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _BadRow(f"message {j} content must be a string")
        if role == "assistant":
            if m.get("weight", 1) not in (0, 1) or isinstance(m.get("weight"), bool):
                raise _BadRow(f"message {j} has weight {m['weight']!r}; an assistant message's weight is 0 or 1")
            for call in m.get("tool_calls") or []:
                fn = call.get("function", call) if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise _BadRow(f"message {j} has a tool call without a function name")
                args = fn.get("arguments", {})
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError as exc:
                        raise _BadRow(f"message {j} tool call {fn['name']!r}: arguments are not valid JSON") from exc
                if not isinstance(args, dict):
                    raise _BadRow(f"message {j} tool call {fn['name']!r}: arguments must be a JSON object")
                if isinstance(call.get("id"), str):
                    ids.add(call["id"])
        if role == "tool" and not m.get("name") and m.get("tool_call_id") not in ids:
            raise _BadRow(f"tool message {j} names no tool and its tool_call_id matches no earlier call")


def _check_sft(row: dict) -> None:
    _check_messages(row["messages"], row["tools"])
    if not any(m["role"] == "assistant" and (m.get("content") or m.get("tool_calls")) and m.get("weight", 1)
               for m in row["messages"]):
        raise _BadRow("no assistant message with weight 1: nothing to learn from")


# ---- DPO formats --------------------------------------------------------------------------


def _assistant(value: Any, what: str) -> dict:
    if isinstance(value, str):
        return {"role": "assistant", "content": value}
    if isinstance(value, dict):
        msg = _clean_message(value)
        msg.setdefault("role", "assistant")
        if msg["role"] != "assistant":
            raise _BadRow(f'"{what}" must be an assistant message, got role {msg["role"]!r}')
        return msg
    raise _BadRow(f'missing "{what}" (an assistant message)')


def _from_pairs(record: dict) -> dict:
    if "chosen" not in record or "rejected" not in record:
        raise _BadRow('a DPO row needs "chosen" and "rejected"')
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise _BadRow('missing "prompt" (a list of messages)')
    return {
        "prompt": [_clean_message(m) for m in prompt],
        "chosen": _assistant(record.get("chosen"), "chosen"),
        "rejected": _assistant(record.get("rejected"), "rejected"),
        "tools": _tools(record),
    }


def _split_hh(text: str) -> list[dict]:
    messages = []
    for part in text.split("\n\nHuman: ")[1:] if "\n\nHuman: " in text else []:
        human, _, rest = part.partition("\n\nAssistant: ")
        messages.append({"role": "user", "content": human.strip()})
        for k, reply in enumerate(rest.split("\n\nAssistant: ")):
            if k or reply or "\n\nAssistant: " in part:
                messages.append({"role": "assistant", "content": reply.strip()})
    return messages


def _from_hh(record: dict) -> dict:
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise _BadRow('an hh-rlhf row needs string "chosen" and "rejected" transcripts')
    c, r = _split_hh(chosen), _split_hh(rejected)
    if not c or not r or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant" or c[:-1] != r[:-1]:
        raise _BadRow("chosen and rejected must share the dialogue and end in different Assistant replies")
    return {"prompt": c[:-1], "chosen": c[-1], "rejected": r[-1], "tools": None}


def _from_ultrafeedback(record: dict) -> dict:
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if not isinstance(chosen, list) or not isinstance(rejected, list) or not chosen or not rejected:
        raise _BadRow('an ultrafeedback row needs "chosen" and "rejected" message lists')
    chosen = [_clean_message(m) for m in chosen]
    rejected = [_clean_message(m) for m in rejected]
    prompt = chosen[:-1] or [{"role": "user", "content": str(record.get("prompt", ""))}]
    return {
        "prompt": prompt,
        "chosen": _assistant(chosen[-1], "chosen"),
        "rejected": _assistant(rejected[-1], "rejected"),
        "tools": None,
    }


def _check_dpo(row: dict) -> None:
    _check_messages(row["prompt"] + [row["chosen"]], row["tools"])
    _check_messages(row["prompt"] + [row["rejected"]], row["tools"])
    if row["prompt"][-1].get("role") == "assistant":
        raise _BadRow("the prompt must end with a user or tool message (the reply is chosen/rejected)")
