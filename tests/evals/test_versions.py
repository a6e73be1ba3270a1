import pytest

from evals.errors import HarnessError, SpecError
from evals.versions import (
    CheckpointModel,
    EndpointModel,
    NullModel,
    OracleModel,
    parse_agent_specs,
    parse_model_specs,
    split_specs,
)


def test_split_specs_accepts_repeats_and_commas():
    assert split_specs(["v1,v2", " v3 ", ""]) == ["v1", "v2", "v3"]


def test_model_specs(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    models = parse_model_specs(["oracle,null", "gpt=http://127.0.0.1:8000/v1", f"mine=ckpt:{ckpt}"])
    assert [type(m) for m in models] == [OracleModel, NullModel, EndpointModel, CheckpointModel]
    assert [m.name for m in models] == ["oracle", "null", "gpt", "mine"]
    assert models[2].endpoint == "http://127.0.0.1:8000/v1"
    assert models[3].path == ckpt.resolve() and models[3].endpoint is None  # no server yet
    assert models[3].spec == f"mine=ckpt:{ckpt}"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gpt4", "use oracle, null, NAME=URL or NAME=ckpt:PATH"),
        ("a b=http://x", "must be letters"),
        ("x=localhost:8000", "http(s):// URL or ckpt:PATH"),
        ("x=ckpt:/definitely/missing", "does not exist"),
    ],
)
def test_bad_model_specs(spec, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_model_specs([spec])


def test_duplicate_and_missing_versions():
    with pytest.raises(SpecError, match="share a name"):
        parse_model_specs(["oracle", "oracle"])
    with pytest.raises(SpecError, match="at least one"):
        parse_model_specs([])
    with pytest.raises(SpecError, match="share a name"):
        parse_agent_specs(["v2,v2"])


def test_agent_specs_by_name_and_path(tmp_path):
    custom = tmp_path / "no-parallel.yaml"
    custom.write_text("extends: v2\ntools: {parallel: false}\n")
    v1, v2, ablation = parse_agent_specs(["v1,v2", str(custom)])
    assert (v1.name, v2.name, ablation.name) == ("v1", "v2", "no-parallel")
    assert v2.profile.tools.parallel and not ablation.profile.tools.parallel
    with pytest.raises(SpecError, match="--agent 'v7'"):
        parse_agent_specs(["v7"])


def test_oracle_needs_an_oracle_and_null_answers_without_tools(tmp_path):
    from evals_testkit import write_suite

    suite = write_suite(tmp_path, {"t": """
        id: t
        category: qa
        difficulty: easy
        instruction: hi
        checks: [{type: answer, contains: hi}]
    """})
    with pytest.raises(HarnessError, match="has no oracle") as err:
        OracleModel().chat_model(suite.tasks[0])
    assert err.value.retryable is False
    import asyncio

    turn = asyncio.run(NullModel().chat_model(suite.tasks[0]).complete([{"role": "user", "content": "hi"}], []))
    assert turn.tool_calls == [] and turn.content == "I don't know."


def test_temperature_reaches_the_served_models_chat_client(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    models = parse_model_specs(["oracle", "gpt=http://127.0.0.1:8000/v1", f"mine=ckpt:{ckpt}"], temperature=0.0)
    assert all(m.temperature == 0.0 for m in models)
    assert models[1].chat_model(None).temperature == 0.0
    assert parse_model_specs(["gpt=http://127.0.0.1:8000/v1"])[0].chat_model(None).temperature is None


def test_oracle_runs_every_call_of_a_step_under_a_one_call_per_turn_profile(tmp_path, v1, v2):
    """rename-symbol's oracle edits five places in one step; v1 runs one call per turn."""
    import asyncio
    from pathlib import Path

    from evals_testkit import FuncModel
    from iclaw.providers import ScriptedModel

    from evals.attempt import Attempt, run_attempt
    from evals.shell import harness_env
    from evals.task import load_suite

    task = load_suite(Path(__file__).resolve().parents[2] / "tasks", only=["rename-symbol"]).tasks[0]
    assert max(len(step.tool_calls or []) for step in task.oracle) == 5

    def attempt(model, agent):
        return asyncio.run(run_attempt(Attempt("r", task, model, agent, 1, tmp_path / f"{agent.name}.jsonl"), harness_env()))

    plain = FuncModel(make=lambda t: ScriptedModel([step.to_script() for step in t.oracle]))
    dropped = attempt(plain, v1)  # a plain replay loses four of the five edits under v1
    assert dropped.status == "failed" and dropped.tool_calls == 3
    for agent, steps in ((v1, 8), (v2, 4)):
        record = attempt(OracleModel(), agent)
        assert record.status == "passed", record.checks
        assert record.tool_calls == 7 and record.steps == steps
