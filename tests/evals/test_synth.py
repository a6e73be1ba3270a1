"""`iclaw data synth` / `iclaw data stats`: observations are executed, rows are what iclaw sends,
pairs differ only in one step, nothing is copied from the task suite, a seed fixes the output."""

import json
import re
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from iclaw.agent import Agent
from iclaw.errors import ToolError
from iclaw.profile import load_profile
from iclaw.providers.scripted import ScriptedModel
from iclaw.tools.calculator import evaluate

from evals.synth import FAMILIES, Recipe, SynthOptions, episode_for, replay, row_seed, stable, synthesize
from evals.synth.cli import main as data_main
from evals.task import load_suite

ROOT = Path(__file__).resolve().parents[2]
# One row per family and profile: every family x (v1, v2).
N = 2 * len(FAMILIES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    rows, pairs = out / "sft.jsonl", out / "pairs.jsonl"
    synthesize(SynthOptions(n=N, n_pairs=N, seed=7), rows, pairs)
    return [json.loads(line) for line in rows.read_text().splitlines()], [
        json.loads(line) for line in pairs.read_text().splitlines()
    ]


def test_every_family_under_every_profile(data):
    rows, pairs = data
    seen = {(r["meta"]["family"], r["meta"]["profile"]) for r in rows}
    assert seen == {(f, p) for f in FAMILIES for p in ("v1", "v2")}
    assert len(pairs) == N


def test_every_observation_is_the_tool_run_again_on_a_fresh_workspace(data):
    rows, _ = data
    for row in rows:
        recorded = [m["content"] for m in row["messages"] if m["role"] == "tool"]
        again = replay(row, load_profile(row["meta"]["profile"]))
        assert [stable(o) for o in again] == [stable(o) for o in recorded], row["meta"]["family"]


def test_rows_are_well_formed_chats(data):
    rows, _ = data
    for row in rows:
        messages, family = row["messages"], row["meta"]["family"]
        assert [m["role"] for m in messages[:2]] == ["system", "user"], family
        assert messages[-1]["role"] == "assistant" and not messages[-1].get("tool_calls")
        assert messages[-1]["content"].strip()
        pending: dict[str, str] = {}
        for message in messages[2:]:
            if message["role"] == "assistant":
                assert not pending, f"{family}: calls left unanswered"
                calls = message.get("tool_calls") or []
                if row["meta"]["profile"] == "v1":
                    assert len(calls) <= 1, family
                for call in calls:
                    assert call["type"] == "function"
                    assert isinstance(json.loads(call["function"]["arguments"]), dict)
                    pending[call["id"]] = call["function"]["name"]
            elif message["role"] == "tool":
                assert pending.pop(message["tool_call_id"]) == message["name"], family
            else:
                assert message["role"] == "user" and not pending  # a replan request comes after all results
        assert not pending
        assert {t["function"]["name"] for t in row["tools"]} >= {
            c["function"]["name"] for m in messages for c in m.get("tool_calls") or []
        }


def test_system_prompt_and_tools_are_what_the_agent_sends(data, tmp_path):
    rows, _ = data
    for row in rows[:4]:
        workspace = tmp_path / row["meta"]["family"] / row["meta"]["profile"]
        workspace.mkdir(parents=True)
        recipe = Recipe.from_meta(row["meta"]["workspace"])
        recipe.build(workspace)
        model = ScriptedModel([{"answer": "ok"}])
        profile = load_profile(row["meta"]["profile"])
        agent = Agent(model, recipe.registry(workspace, profile.permissions.sandbox()), profile)
        anyio.run(agent.run, row["messages"][1]["content"])
        assert model.requests[0][0] == row["messages"][0]
        assert agent.tool_schemas() == row["tools"]


def test_v1_and_v2_rows_teach_their_call_style(data):
    rows, _ = data
    parallel = [r for r in rows if r["meta"]["family"] == "parallel_lookup"]
    widest = {r["meta"]["profile"]: max(len(m.get("tool_calls") or []) for m in r["messages"]) for r in parallel}
    assert widest["v1"] == 1 and widest["v2"] >= 3
    systems = {r["meta"]["profile"]: r["messages"][0]["content"] for r in rows}
    assert "one tool call per reply" in systems["v1"] and "together in one reply" in systems["v2"]


def test_pairs_differ_from_their_row_only_in_the_assistant_step(data):
    rows, pairs = data
    for row, pair in zip(rows, pairs):
        assert pair["meta"]["seed"] == row["meta"]["seed"]
        step = pair["meta"]["step"]
        assert pair["prompt"] == row["messages"][:step]
        assert pair["chosen"] == row["messages"][step]
        assert pair["chosen"]["role"] == pair["rejected"]["role"] == "assistant"
        assert pair["rejected"] != pair["chosen"]
        assert pair["tools"] == row["tools"]
        if row["meta"]["profile"] == "v1":
            assert len(pair["rejected"].get("tool_calls") or []) <= 1


# Observations that mean "that did not work": an error, a refusal, nothing found, a command that failed.
_FAILED = re.compile(r"^(error|refused)\b|^no matches for |^no files match |^exit code [1-9]")
# Observations of a call the tool refused as written (its arguments were wrong).
_REFUSED = ("cannot parse", "unsupported element", "is not a power", "invalid regular expression", "occurs 2 times",
            "Traceback (most recent call last)")
# Math as people write it, which the calculator does not take.
_NOTATION = re.compile(r"[×÷−²³√^%]|\d,\d{3}|\d x \d|\b(squared|cubed|power|root|times|divided|minus|plus)\b")


def _signatures(message: dict) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls") or []]


def _steps(messages: list[dict]):
    """(assistant message, the tool messages answering it) for each step of a chat."""
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            results = []
            for later in messages[i + 1:]:
                if later["role"] != "tool":
                    break
                results.append(later)
            yield message, results


def test_deliberate_slips_are_context_never_targets(data):
    rows, _ = data
    slipped = set()
    for row in rows:
        family, profile = row["meta"]["family"], load_profile(row["meta"]["profile"])
        episode = episode_for(family, row["meta"]["seed"], profile)
        unlearned = [m for m in row["messages"] if m["role"] == "assistant" and m.get("weight") == 0]
        assert bool(unlearned) == bool(episode.mistakes), family
        for m in unlearned:  # a slip is a call, and the call after it (its fix) is learned
            assert m.get("tool_calls"), family
            slipped.add(family)
        assert row["messages"][-1].get("weight", 1) == 1
    assert slipped  # the recovery families are in the sample


def test_a_call_that_failed_is_never_sent_again_unchanged(data):
    rows, _ = data
    for row in rows:
        flaky = {f["tool"] for f in row["meta"]["workspace"]["faults"]}  # injected temporary faults: a retry is right
        failed: list[tuple[str, dict]] = []
        for message, results in _steps(row["messages"]):
            for signature in _signatures(message):
                assert signature not in failed or signature[0] in flaky, (row["meta"]["family"], signature)
            if message.get("tool_calls"):
                failed = [sig for sig, r in zip(_signatures(message), results) if _FAILED.search(r["content"])]


def test_math_in_everyday_notation_reaches_the_calculator_in_its_syntax(data):
    rows, _ = data
    seen = 0
    for row in rows:
        family, messages = row["meta"]["family"], row["messages"]
        steps = [(sig, r) for m, results in _steps(messages) for sig, r in zip(_signatures(m), results)]
        calculator = [(sig[1]["expression"], r["content"]) for sig, r in steps if sig[0] == "calculator"]
        if family not in ("math_notation", "fix_arguments") or not calculator:
            continue
        seen += 1
        assert _NOTATION.search(messages[1]["content"]), messages[1]["content"]
        assert not _NOTATION.search(calculator[-1][0]) and not _FAILED.search(calculator[-1][1])
        if family == "math_notation":
            assert len(calculator) == 1  # converted on the first call
        else:  # the copied notation was refused, read, and fixed
            assert len(calculator) == 2 and _FAILED.search(calculator[0][1]) and calculator[0][0] != calculator[1][0]
        answer = messages[-1]["content"]
        assert re.fullmatch(r"-?\d+(\.\d+)?", answer), answer  # a number, never the expression
        assert abs(Decimal(answer) - Decimal(calculator[-1][1])) <= Decimal("0.005")  # rounded from what it printed
    assert seen >= 2


def test_without_a_path_the_expert_looks_around_and_never_reads_a_made_up_one(data):
    rows, _ = data
    checked = 0
    for row in rows:
        if row["meta"]["family"] not in ("find_file", "change_approach"):
            continue
        checked += 1
        messages = row["messages"]
        if row["meta"]["family"] == "find_file":
            assert not re.search(r"\w\.(toml|yaml|csv|json)\b|/", messages[1]["content"])  # no file named
            assert _signatures(messages[2])[0][0] in ("list_dir", "glob")
        asked, seen = messages[1]["content"], ""
        for message, results in _steps(messages):
            for name, arguments in _signatures(message):
                if name == "read_file":  # named in the question, or listed / mentioned by a tool first
                    path = arguments["path"]
                    assert path in asked or Path(path).name in seen, (row["meta"]["family"], path)
            seen += "\n".join(r["content"] for r in results)
        assert messages[-1]["content"] in [r for _, results in _steps(messages) for r in results][-1]["content"]
    assert checked >= 4


def test_repeated_call_pairs_reject_the_failing_call_sent_again(data):
    _, pairs = data
    repeats = [p for p in pairs if p["meta"]["rejection"] == "repeated_call"]
    assert repeats
    for pair in repeats:
        message, results = [(m, r) for m, r in _steps(pair["prompt"]) if m.get("tool_calls")][-1]
        assert any(_FAILED.search(r["content"]) for r in results)
        assert _signatures(pair["rejected"]) == _signatures(message)[:1]
        assert _signatures(pair["chosen"]) != _signatures(message)


def test_copied_notation_is_refused_or_silently_wrong_in_the_real_calculator():
    for family in ("arithmetic", "math_notation"):
        for i in range(20):
            episode = episode_for(family, row_seed(5, i), load_profile("v1"))
            copied = [r for r in episode.rejections if r.kind == "copied_notation"]
            assert len(copied) == 1
            expression = json.loads(copied[0].message["tool_calls"][0]["function"]["arguments"])["expression"]
            try:
                value = evaluate(expression)
            except ToolError:
                continue
            # '1480 - 30% + 7*24' parses: % is the remainder there, so the value is wrong, not refused.
            assert value != evaluate(episode.turns[0].calls[0].arguments["expression"]), expression


def test_no_pair_prefers_a_call_the_tool_refused(data):
    rows, pairs = data
    for row, pair in zip(rows, pairs):
        step = pair["meta"]["step"]
        _, results = next(_steps(row["messages"][step:]))
        assert not any(marker in r["content"] for r in results for marker in _REFUSED), (row["meta"]["family"], results)


def test_a_seed_fixes_the_output(tmp_path):
    options = SynthOptions(n=6, n_pairs=3, seed=3, families=["config_value", "arithmetic", "parallel_lookup"], jobs=3)
    texts = []
    for name in ("a", "b"):
        synthesize(options, tmp_path / f"{name}.jsonl", tmp_path / f"{name}.pairs.jsonl")
        texts.append(((tmp_path / f"{name}.jsonl").read_text(), (tmp_path / f"{name}.pairs.jsonl").read_text()))
    assert texts[0] == texts[1]
    other = SynthOptions(n=6, seed=4, families=["config_value", "arithmetic", "parallel_lookup"])
    synthesize(other, tmp_path / "c.jsonl")
    assert (tmp_path / "c.jsonl").read_text() != texts[0][0]


def _suite_surface():
    """Every file name, file line and instruction of the task suite."""
    suite = load_suite(ROOT / "tasks")
    names, lines, instructions = set(), set(), []
    for task in suite.tasks:
        instructions.append(task.instruction)
        names |= {Path(p).name for p in [*task.workspace.files, *task.hidden]}
        names |= {Path(m).name for m in re.findall(r"[\w./-]+\.[a-z]{2,4}\b", task.instruction)}
        for spec in task.workspace.files.values():
            if isinstance(spec, str):
                lines |= {ln.strip() for ln in spec.splitlines()}
    for file in (ROOT / "tasks" / "fixtures").rglob("*"):
        if file.is_file():
            names.add(file.name)
            lines |= {ln.strip() for ln in file.read_text(errors="replace").splitlines()}
    return names, {ln for ln in lines if len(ln) >= 25}, instructions


def _shingles(text: str, k: int = 6) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + k]) for i in range(len(words) - k + 1)}


def test_nothing_is_copied_from_the_suite():
    names, lines, instructions = _suite_surface()
    suite_shingles = set().union(*(_shingles(i) for i in instructions))
    for family in FAMILIES:
        for profile in ("v1", "v2"):
            for i in range(24):
                episode = episode_for(family, row_seed(11, i), load_profile(profile))
                assert not _shingles(episode.instruction) & suite_shingles, (family, _shingles(episode.instruction) & suite_shingles)
                for path, text in episode.recipe.files.items():
                    assert Path(path).name not in names, (family, path)
                    shared = {ln.strip() for ln in text.splitlines()} & lines
                    assert not shared, (family, path, shared)
                for spec in episode.recipe.mock_tools:
                    assert spec.name not in {"get_weather", "get_price", "fx_rate"}


def test_stats_prints_families_turns_tokens_and_calls_per_turn(data, tmp_path, capsys):
    rows, _ = data
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert data_main(["stats", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rows"] == N and sum(stats["families"].values()) == N
    assert set(stats["families"]) == set(FAMILIES)
    assert stats["assistant_turns"]["min"] >= 2
    assert stats["tokens"]["mean"] > stats["tokens"]["system_and_tools_mean"] > 0
    assert int(max(stats["calls_per_turn"]["histogram"], key=int)) >= 3  # v2's parallel lookups
    assert data_main(["stats", str(path)]) == 0
    table = capsys.readouterr().out
    assert "edit_tests" in table and "calls per assistant turn" in table


def test_cli_writes_rows_and_reports_bad_input_in_one_line(tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    assert data_main(["synth", "--n", "2", "--out", str(out), "--families", "arithmetic", "--seed", "1"]) == 0
    assert len(out.read_text().splitlines()) == 2
    capsys.readouterr()
    assert data_main(["synth", "--n", "2", "--out", str(out), "--profile", "v9"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("iclaw data: error:") and "v9" in err and "\n" not in err
    assert data_main(["synth", "--n", "2", "--out", str(out), "--families", "cooking"]) == 1
    assert "unknown family cooking" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    assert data_main(["stats", str(bad)]) == 1
    assert "neither an SFT row" in capsys.readouterr().err


@pytest.mark.model
def test_rows_render_with_the_shared_renderer_and_the_prompt_stays_compact(data, smollm2_path, tmp_path):
    from iclaw.prompts import DEFAULT_SYSTEM_PROMPT
    from iclaw.tools import builtin_registry
    from llm.chat_template import render_chat
    from llm.tokenizer import Tokenizer

    tok = Tokenizer.load(Path(smollm2_path) / "tokenizer.json")
    rows, pairs = data
    for row in rows:
        ids, mask = render_chat(tok, row["messages"], row["tools"])
        assert 0 < sum(mask) < len(ids)
    for pair in pairs:
        for step in (pair["chosen"], pair["rejected"]):
            render_chat(tok, [*pair["prompt"], step], pair["tools"])
    # The system prompt with all nine built-in tool schemas was 1318 SmolLM2 tokens before compaction.
    schemas = builtin_registry(tmp_path).schemas()
    ids, _ = render_chat(tok, [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}], schemas)
    assert len(schemas) == 9 and len(ids) <= 850


def test_an_expert_that_cannot_finish_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    def broken(rng, style):
        episode = FAMILIES["arithmetic"](rng, style)
        episode.evidence.append("never printed by any tool")
        return episode

    monkeypatch.setitem(FAMILIES, "broken", broken)
    out = tmp_path / "rows.jsonl"
    assert data_main(["synth", "--n", "1", "--out", str(out), "--families", "broken"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("iclaw data: error:") and "never printed by any tool" in last and "redraws" in last
    assert not out.exists() and not list(tmp_path.iterdir())  # no half-written file left behind
