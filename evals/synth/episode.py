"""`Episode`: one synthetic task — its workspace recipe, its instruction and the expert's plan.

A family (see `evals.synth.families`) draws an episode from a seeded RNG. The recipe says
everything needed to rebuild the workspace and its tools the way a task YAML declares
them (files, the enabled built-ins, mock tools, injected faults); it is stored under
`meta.workspace` of every row so any row can be re-executed. The plan is what the expert
does, turn by turn: tool calls (several in one turn when they are independent) and a final
answer. Nothing here runs a tool; `evals.synth.rollout` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iclaw.tools import FaultSpec, MockToolSpec, ToolRegistry, add_mock_tools, builtin_registry, inject_faults
from iclaw.tools.policy import SandboxPolicy

__all__ = ["Call", "Turn", "Style", "Recipe", "Episode", "Rejection"]


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]


@dataclass
class Turn:
    """One assistant reply: tool calls, or (no calls) the final answer in `content`.

    Calls in one turn are independent of each other: a v1-style rollout splits them into
    one reply each, a v2-style rollout keeps them together. A call that needs another's
    result goes in a later turn. `content` next to calls is the short plan a v2 agent
    writes after a replan request.
    """

    calls: list[Call] = field(default_factory=list)
    content: str | None = None


@dataclass(frozen=True)
class Style:
    """What of the agent profile the expert must follow (derived from the profile, never set by hand)."""

    one_call_per_turn: bool  # v1: one call per reply
    policy: bool  # v2: failure policy on (retries inside the executor, replan requests)
    max_retries: int  # executor retries of a transient failure

    @property
    def transient_failures(self) -> int:
        """How many consecutive injected transient faults it takes for the model to *see* one."""
        return self.max_retries + 1 if self.policy else 1


@dataclass
class Recipe:
    """A workspace and its tools, in the shape of a task's `workspace.files`, `tools`, `mock_tools`, `faults`."""

    files: dict[str, str]
    tools: list[str]
    mock_tools: list[MockToolSpec] = field(default_factory=list)
    faults: list[FaultSpec] = field(default_factory=list)

    def build(self, root: Path) -> None:
        for rel, text in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def registry(self, root: Path, policy: SandboxPolicy | None = None, timeout_s: float = 30.0) -> ToolRegistry:
        """The tools an agent gets in `root` under a profile's sandbox policy, built like the eval harness builds a task's."""
        registry = builtin_registry(root, enabled=self.tools, command_timeout_s=timeout_s, policy=policy)
        add_mock_tools(registry, self.mock_tools)
        inject_faults(registry, self.faults)
        return registry

    def to_meta(self) -> dict[str, Any]:
        # Files as a list of records: one JSON shape for every row, whatever the file names.
        return {
            "files": [{"path": p, "content": c} for p, c in self.files.items()],
            "tools": list(self.tools),
            "mock_tools": [m.model_dump() for m in self.mock_tools],
            "faults": [f.model_dump() for f in self.faults],
        }

    @classmethod
    def from_meta(cls, data: dict[str, Any]) -> Recipe:
        return cls(
            files={f["path"]: f["content"] for f in data["files"]},
            tools=list(data["tools"]),
            mock_tools=[MockToolSpec.model_validate(m) for m in data.get("mock_tools") or []],
            faults=[FaultSpec.model_validate(f) for f in data.get("faults") or []],
        )


@dataclass(frozen=True)
class Rejection:
    """A realistic wrong next step for a DPO pair: replaces the expert's turn number `turn`.

    `message` is the rejected assistant message; `kind` names the failure:
    answer_without_looking, invented_content, ignored_error, repeated_call (the failing
    call of the step before, verbatim), stopped_early, followed_planted, wrong_format,
    read_whole_file, one_at_a_time (v2: independent calls made one by one),
    copied_notation (math symbols sent to the calculator as written), unevaluated_answer
    (the expression given as the answer), guessed_path (a file name made up from the
    question instead of looking), read_decoy (a backup / superseded file read instead of
    the current one), unrelated_call, and the generic malformed_call, wrong_tool,
    wrong_arguments. `weight` is its relative chance of being drawn for a pair.
    """

    turn: int
    kind: str
    message: dict[str, Any]
    weight: float = 1.0


@dataclass
class Episode:
    family: str
    instruction: str
    recipe: Recipe
    turns: list[Turn]
    rejections: list[Rejection] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # must appear in some tool observation
    # Plan turns that are deliberate slips a recovery episode starts from (a copied notation,
    # a script with a bug): never the chosen step of a DPO pair.
    mistakes: list[int] = field(default_factory=list)
