import json

from rich.console import Console

from evals.store import ResultRecord, RunRecord
from evals.transcript import read_events, render_transcript

RUN = RunRecord(id="b-m-v2", batch="b", suite="tasks", model="m", agent="v2", config={})


def text_of(renderable) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_transcript_shows_checks_messages_and_unknown_events(tmp_path):
    path = tmp_path / "t.jsonl"
    events = [
        {"type": "meta", "t": 0, "model": "m", "profile": {"name": "v2", "memory": {"huge": "x" * 5000}}},
        {"type": "message", "t": 0.1, "message": {"role": "user", "content": "add 2 and 2"}},
        {"type": "message", "t": 0.2, "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+2"}'}}]}},
        {"type": "brand_new_event", "t": 0.3, "detail": "kept"},
        {"type": "memory", "t": 0.4, "state": {"secret": "not shown"}},
    ]
    path.write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n")
    assert len(read_events(path)) == 5
    result = ResultRecord("b-m-v2", "add-task", 1, "failed", answer="5", trajectory_path=str(path),
                          checks=[{"type": "answer", "passed": False, "detail": "last number 5 != 4"}])
    text = text_of(render_transcript(RUN, result))
    assert "status failed" in text and "answer: '5'" in text and "✗ answer: last number 5 != 4" in text
    assert "add 2 and 2" in text and '→ calculator({"expression": "2+2"})' in text
    assert "brand_new_event" in text and "kept" in text
    assert "not shown" not in text and '"profile": "v2"' in text


def test_transcript_without_trajectory(tmp_path):
    result = ResultRecord("b-m-v2", "t", 1, "harness_error", error="model down", trajectory_path=str(tmp_path / "none"))
    text = text_of(render_transcript(RUN, result))
    assert "error: model down" in text and "(no trajectory at" in text
