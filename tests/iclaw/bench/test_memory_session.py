"""The memory benchmark's session is honest: each planted value occurs exactly once in what the agent is given."""

from iclaw.bench.memory import build_session


def test_planted_values_are_unique_and_appear_once():
    messages, logs, planted = build_session(turns=200, facts=20, seed=0)
    assert len(messages) == 200 and len(planted) == 20
    assert {f["source"] for f in planted} == {"user", "tool"}
    corpus = "\n".join(messages) + "\n" + "\n".join(logs.values())
    for fact in planted:
        assert corpus.count(fact["value"]) == 1, fact
    assert build_session(turns=200, seed=0) == (messages, logs, planted)  # deterministic
