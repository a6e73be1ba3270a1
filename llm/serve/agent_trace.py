"""Multi-step agent conversations to replay against a server: synthesised, or read from eval trajectories.

An agent sends its whole conversation at every step: the system prompt with the tool
schemas, the task, then every earlier tool call and tool result. A trace is a list of
conversations; a conversation is the list of requests (message lists) of its steps, each
the previous one plus the assistant's call and the tool's result. The replayed assistant
turns are the recorded (or scripted) ones, not what the server answers, so every server
and setting sees exactly the same prompts.

- `synthetic_trace`: a system prompt of roughly `system_tokens` tokens (instructions and
  JSON schemas of a dozen tools, as an agent's tool block reads), a task, and `steps`
  steps that each add a tool call and a result of some 100 tokens (a file listing, part of
  a source file, a test run).
- `trajectory_trace`: the `message` events of the JSONL trajectories `iclaw eval` writes
  (one file per task and epoch); the system prompt is the synthetic one, since a
  trajectory records messages but not the tool schemas the agent sent.

Every conversation's system prompt starts with its own session line, so conversations
share nothing: a step-1 prompt is never in the cache, whatever ran before. Knows the
OpenAI message shape only: no HTTP, no tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm.errors import ConfigError

__all__ = ["synthetic_trace", "trajectory_trace", "system_prompt"]

# (name, description, {parameter: (JSON type, description)}): the shape of a coding agent's tools.
_TOOLS = [
    ("read_file", "Read a text file of the workspace, optionally a range of lines.",
     {"path": ("string", "Path relative to the workspace root."), "start": ("integer", "First line, 1-based."),
      "end": ("integer", "Last line, inclusive.")}),
    ("write_file", "Create or overwrite a text file with the given content.",
     {"path": ("string", "Path relative to the workspace root."), "content": ("string", "The whole new content.")}),
    ("edit_file", "Replace one exact occurrence of a string in a file; fails if it is missing or ambiguous.",
     {"path": ("string", "File to edit."), "old": ("string", "Exact text to replace."),
      "new": ("string", "Replacement text.")}),
    ("list_dir", "List the entries of a directory with their sizes; directories end with a slash.",
     {"path": ("string", "Directory relative to the workspace root."), "depth": ("integer", "Levels to descend.")}),
    ("glob", "Find files whose path matches a glob pattern such as src/**/*.py.",
     {"pattern": ("string", "Glob pattern."), "limit": ("integer", "Most paths to return.")}),
    ("grep", "Search files for a regular expression; returns matching lines with file names and numbers.",
     {"pattern": ("string", "RE2 regular expression."), "path": ("string", "File or directory to search."),
      "ignore_case": ("boolean", "Match case-insensitively.")}),
    ("run_shell", "Run a shell command in the workspace sandbox and return its exit code, stdout and stderr.",
     {"command": ("string", "The command line."), "timeout_s": ("number", "Seconds before the command is killed.")}),
    ("run_python", "Run a Python snippet in a fresh interpreter in the workspace and return what it printed.",
     {"code": ("string", "Python source."), "timeout_s": ("number", "Seconds before it is killed.")}),
    ("calculator", "Evaluate an arithmetic expression exactly (integers, fractions, powers, parentheses).",
     {"expression": ("string", "The expression, e.g. 17*23 + 4.")}),
    ("http_get", "Fetch a URL from an allowed host and return the response body as text.",
     {"url": ("string", "Absolute http or https URL."), "max_bytes": ("integer", "Truncate the body after this.")}),
    ("search_notes", "Search the project notes for a phrase and return the best matching paragraphs.",
     {"query": ("string", "Words to look for."), "top_k": ("integer", "Paragraphs to return.")}),
    ("todo", "Keep a short plan: add, complete or list the steps of the current task.",
     {"action": ("string", "One of add, done, list."), "text": ("string", "The step, for add and done.")}),
]

_RULES = """You are a careful software agent working in a sandboxed workspace. You solve the user's task
by calling tools, reading their results, and calling more tools until the task is done; then you
answer in one short paragraph. Rules:
- Read before you write: look at a file before editing it, and at a directory before assuming what is in it.
- Prefer edit_file for small changes and write_file only for new files or complete rewrites.
- Run the tests after every change that could affect them, and read failures completely before acting.
- When a tool fails, read the error, change something, and try again; give up after three failures in a row.
- Never touch files outside the workspace, never use the network unless the task says so.
- Keep answers short and exact: names, numbers and paths as they appear in the workspace.
Call several independent tools at once when you can; wait for results before calls that depend on them.
"""


def system_prompt(session: str, system_tokens: int = 1400) -> str:
    """A session line, then instructions and tool schemas (numbered variants once the dozen runs out)
    while they fit about `system_tokens` tokens (3.6 characters per token for this mix of English
    and JSON with SmolLM2's tokenizer)."""
    budget = system_tokens * 3.6
    parts = [f"Session {session}."]
    for n in range(10_000):
        name, description, params = _TOOLS[n % len(_TOOLS)]
        schema = {
            "name": name + ("" if n < len(_TOOLS) else f"_{n // len(_TOOLS) + 1}"),
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {p: {"type": t, "description": d} for p, (t, d) in params.items()},
                "required": [next(iter(params))],
            },
        }
        part = json.dumps(schema) if n else _RULES + "# Tools\n" + json.dumps(schema)
        if sum(map(len, parts)) + len(part) > budget:
            break
        parts.append(part)
    return "\n".join(parts)


def _tool_result(conv: int, step: int) -> tuple[str, dict, str]:
    """(tool name, arguments, result text of about 100 tokens) for a scripted step."""
    kind = step % 3
    if kind == 0:
        names = [f"src/pkg{conv}/module_{step}_{j}.py" for j in range(8)]
        return "list_dir", {"path": f"src/pkg{conv}"}, "\n".join(f"{n}  {120 + 37 * j} bytes" for j, n in enumerate(names))
    if kind == 1:
        path = f"src/pkg{conv}/module_{step}_0.py"
        lines = [f"def step_{step}_f{j}(x: int) -> int:\n    return x * {j + step} + {conv}\n" for j in range(6)]
        return "read_file", {"path": path}, "".join(lines)
    failures = [f"FAILED tests/test_module_{step}.py::test_case_{j} - assert {j * step} == {j * step + 1}" for j in range(4)]
    return "run_shell", {"command": "python -m pytest -q"}, "\n".join(failures) + f"\n4 failed, {10 + step} passed in 0.8s"


def synthetic_trace(conversations: int, steps: int, system_tokens: int = 1400, salt: str = "") -> list[list[list[dict]]]:
    """`conversations` conversations of `steps` requests each (see the module docstring)."""
    trace = []
    for c in range(conversations):
        messages: list[dict] = [
            {"role": "system", "content": system_prompt(f"{salt}{c}", system_tokens)},
            {"role": "user", "content": f"The tests of package pkg{c} fail after the last refactor. Find out why and fix it."},
        ]
        requests = []
        for s in range(steps):
            requests.append(list(messages))
            name, args, result = _tool_result(c, s)
            call_id = f"call_{c}_{s}"
            messages += [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                ]},
                {"role": "tool", "tool_call_id": call_id, "content": result},
            ]
        trace.append(requests)
    return trace


def trajectory_trace(path: str | Path, steps: int, system_tokens: int = 1400, salt: str = "") -> list[list[list[dict]]]:
    """One conversation per trajectory file (`path` is a file or a directory of `*.jsonl`), at most `steps` steps each."""
    root = Path(path)
    files = sorted(root.glob("*.jsonl")) if root.is_dir() else [root]
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(f"--trace-file {path}: give a trajectory .jsonl file or a directory holding some")
    trace = []
    for c, f in enumerate(files):
        messages = _messages(f)
        system = [{"role": "system", "content": system_prompt(f"{salt}{c}", system_tokens)}]
        requests = [system + messages[:i] for i, m in enumerate(messages) if m["role"] == "assistant" and i > 0]
        if requests:
            trace.append(requests[:steps])
    if not trace:
        raise ConfigError(f"--trace-file {path}: no trajectory there has an assistant turn to replay")
    return trace


def _messages(f: Path) -> list[dict]:
    out = []
    try:
        for line in f.read_text().splitlines():
            event = json.loads(line) if line.strip() else {}
            message = event.get("message") if event.get("type") == "message" else None
            if isinstance(message, dict) and message.get("role") in ("user", "assistant", "tool"):
                out.append({k: v for k, v in message.items() if k in ("role", "content", "tool_calls", "tool_call_id")})
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--trace-file {f}: not a trajectory JSONL file ({exc})") from exc
    return out
