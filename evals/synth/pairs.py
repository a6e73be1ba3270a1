"""DPO pairs: the expert's step against a realistic wrong one, after the same prompt.

The prompt is the rolled-out conversation up to one assistant step; `chosen` is that
step, `rejected` a failure. Family-specific failures come with the episode (answering
without looking, invented contents, ignoring an error, sending a failed call again,
copying math notation into the calculator, guessing a path, stopping early, following a
planted instruction, the wrong answer form), each with a weight; the generic ones are
derived here from any tool-call step: a malformed call (broken JSON left as text, as a
server returns it), an unknown tool name, a misspelt argument name. A step the episode
marks as a deliberate mistake is never the chosen one.
"""

from __future__ import annotations

import json
import random

from evals.synth.episode import Episode, Rejection
from evals.synth.rollout import Conversation, RolloutError

__all__ = ["make_pair", "generic_rejections"]

_TOOL_ALIASES = {
    "read_file": ["read", "cat", "open_file"],
    "write_file": ["save_file", "write"],
    "edit_file": ["replace_in_file", "patch"],
    "list_dir": ["ls", "list_files"],
    "glob": ["find_files", "search_files"],
    "grep": ["search", "grep_files"],
    "run_shell": ["bash", "shell", "exec"],
    "run_python": ["python", "exec_python"],
    "calculator": ["calc", "math"],
}
_ARG_ALIASES = {"path": "file", "pattern": "query", "expression": "expr", "command": "cmd", "code": "script",
                "content": "text", "search": "old", "city": "name", "sku": "id", "destination": "city",
                "ticket": "id"}


def _call_message(name: str, arguments: dict) -> dict:
    raw = json.dumps(arguments, ensure_ascii=False)
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "call_r1", "type": "function", "function": {"name": name, "arguments": raw}}]}


def generic_rejections(episode: Episode, rng: random.Random) -> list[Rejection]:
    """Malformed call, wrong tool name and wrong argument name, for one tool-call turn of the plan."""
    turns = [k for k, t in enumerate(episode.turns) if t.calls and k not in episode.mistakes]
    if not turns:
        return []
    k = rng.choice(turns)
    first = episode.turns[k].calls[0]
    out = []
    block = json.dumps({"name": first.name, "arguments": first.arguments}, ensure_ascii=False)
    broken = rng.choice([block[:-1], block.replace('"arguments": ', '"arguments": "', 1), block.replace('"', "'")])
    out.append(Rejection(k, "malformed_call", {"role": "assistant", "content": f"<tool_call>{broken}</tool_call>"}))
    if first.name in _TOOL_ALIASES:
        out.append(Rejection(k, "wrong_tool", _call_message(rng.choice(_TOOL_ALIASES[first.name]), first.arguments)))
    renamed = {(_ARG_ALIASES.get(key, key + "_name")): value for key, value in first.arguments.items()}
    if renamed != first.arguments:
        out.append(Rejection(k, "wrong_arguments", _call_message(first.name, renamed)))
    return out


# How often a pair uses a family-specific failure rather than a generic format slip: a model
# fine-tuned on the SFT rows already formats its calls; what it gets wrong is what to do.
_SPECIFIC = 0.8


def make_pair(episode: Episode, conversation: Conversation, rng: random.Random, meta: dict) -> dict:
    """One DPO row; family-specific failures are preferred (`_SPECIFIC`), drawn by weight."""
    specific = episode.rejections
    generic = generic_rejections(episode, rng)
    pool = specific if specific and (rng.random() < _SPECIFIC or not generic) else generic
    rejection = rng.choices(pool, weights=[r.weight for r in pool])[0]
    index = conversation.turn_index[rejection.turn]
    chosen = conversation.messages[index]
    if rejection.turn in episode.mistakes:
        raise RolloutError(f"{episode.family}: a pair whose chosen step is a deliberate mistake ({rejection.kind})")
    if rejection.message == chosen:
        raise RolloutError(f"{episode.family}: a rejected step equal to the chosen one ({rejection.kind})")
    return {
        "prompt": conversation.messages[:index],
        "chosen": chosen,
        "rejected": rejection.message,
        "tools": conversation.tools,
        "meta": {**meta, "rejection": rejection.kind, "step": index},
    }
