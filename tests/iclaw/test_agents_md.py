"""AGENTS.md: found in the workspace or a parent up to the repository root, in the system prompt
once under its heading, within its token cap, kept through v2's compaction, off with --no-agents-md."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iclaw import wiring
from iclaw.agents_md import find_agents_md, load_instructions
from iclaw.cli import main
from iclaw.prompts import AGENTS_MD_HEADING
from iclaw.terminal.commands import loaded_notes
from iclaw.tokens import load_counter

RULES = "Always run `make lint` before you answer.\nNever edit files under vendor/."


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "pkg" / "sub").mkdir(parents=True)
    return root


def test_found_in_the_workspace_or_a_parent_up_to_the_repository_root(repo, tmp_path):
    (tmp_path / "AGENTS.md").write_text("outside the repository")
    assert find_agents_md(repo / "pkg" / "sub") is None  # the file above the root is not ours
    (repo / "AGENTS.md").write_text(RULES)
    assert find_agents_md(repo / "pkg" / "sub") == repo / "AGENTS.md"
    (repo / "pkg" / "AGENTS.md").write_text("package rules")
    assert find_agents_md(repo / "pkg" / "sub") == repo / "pkg" / "AGENTS.md"  # the nearest wins


def test_outside_a_repository_only_the_workspace_counts(tmp_path):
    ws = tmp_path / "scratch" / "ws"
    ws.mkdir(parents=True)
    (tmp_path / "scratch" / "AGENTS.md").write_text("a stranger's file")
    assert find_agents_md(ws) is None
    (ws / "AGENTS.md").write_text(RULES)
    assert find_agents_md(ws) == (ws / "AGENTS.md").resolve()


def settings_for(workspace: Path, tmp_path: Path, **kw) -> wiring.AgentSettings:
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump([{"answer": "ok"}]))
    return wiring.AgentSettings(workspace=workspace, script=script, **kw)


def test_in_the_system_prompt_once_under_its_heading(workspace, tmp_path):
    (workspace / "AGENTS.md").write_text(RULES)
    agent = wiring.build_agent(settings_for(workspace, tmp_path))
    system = agent.memory.messages()[0]["content"]
    assert system.count(AGENTS_MD_HEADING) == 1 and system.count("Never edit files under vendor/.") == 1
    assert system.index(AGENTS_MD_HEADING) > system.index("You are iclaw")
    assert agent.project_instructions.truncated is False
    assert "AGENTS.md loaded" in loaded_notes(agent)
    plain = wiring.build_agent(settings_for(workspace, tmp_path, agents_md=False))
    assert AGENTS_MD_HEADING not in plain.memory.messages()[0]["content"]
    assert plain.project_instructions is None and "AGENTS.md" not in loaded_notes(plain)


def test_a_long_file_is_cut_to_its_cap(workspace, tmp_path):
    (workspace / "AGENTS.md").write_text("\n".join(f"Rule {i}: keep module {i} small and tested." for i in range(400)))
    counter = load_counter("estimate")
    instructions = load_instructions(workspace, counter, max_tokens=120)
    assert instructions.truncated and instructions.tokens <= 120 and counter.count(instructions.text) <= 120
    assert instructions.text.startswith("Rule 0:") and instructions.text.endswith("budget of 120 tokens]")
    agent = wiring.build_agent(settings_for(workspace, tmp_path, overrides=["memory.instructions_tokens=120"]))
    assert agent.project_instructions.tokens <= 120
    assert "Rule 399" not in agent.memory.messages()[0]["content"]


@pytest.mark.anyio
async def test_survives_compaction_under_v2_and_counts_in_the_budget(workspace, tmp_path):
    (workspace / "AGENTS.md").write_text(RULES)
    overrides = ["memory.budget_tokens=3072", "memory.summarizer=extractive", "memory.keep_recent=2"]
    agent = wiring.build_agent(settings_for(workspace, tmp_path, profile="v2", overrides=overrides))
    without = wiring.build_agent(settings_for(workspace, tmp_path, profile="v2", overrides=overrides, agents_md=False))
    assert agent.memory.count() - without.memory.count() >= agent.project_instructions.tokens  # counted by the budget
    for i in range(80):
        agent.memory.add({"role": "user", "content": f"step {i}: " + "filler words " * 30})
        agent.memory.add({"role": "assistant", "content": f"did step {i}"})
    events = await agent.compact()
    assert events, "the long session was compacted"
    system = agent.memory.messages()[0]["content"]
    assert system.count(AGENTS_MD_HEADING) == 1 and "Never edit files under vendor/." in system
    assert agent.memory.count(agent.tool_schemas()) <= agent.memory.budget


def test_no_agents_md_flag(workspace, tmp_path, monkeypatch):
    (workspace / "AGENTS.md").write_text(RULES)
    built = []
    real = wiring.build_agent
    monkeypatch.setattr(wiring, "build_agent", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump([{"answer": "ok"}, {"answer": "ok"}]))
    assert main(["run", "hi", "-w", str(workspace), "--script", str(script)]) == 0
    assert main(["run", "hi", "-w", str(workspace), "--script", str(script), "--no-agents-md"]) == 0
    with_file, without = (a.memory.system_prompt for a in built)
    assert RULES in with_file and RULES not in without
