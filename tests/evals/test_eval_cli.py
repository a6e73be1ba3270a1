"""`evals.cli.main` (what `iclaw eval ...` calls): run, validate, report, compare, show, errors."""

import json
import sqlite3
from pathlib import Path

import pytest
from evals_testkit import write_suite
from rich.console import Console

from evals.cli import main
from evals.server import free_port

ROOT = Path(__file__).resolve().parents[2]

TASK = """
id: {id}
category: qa
difficulty: easy
instruction: Compute {expr}. Answer with the number only.
tools: [calculator]
checks:
  - {{type: answer, number: {value}}}
oracle:
  - tool_calls: [{{name: calculator, arguments: {{expression: "{expr}"}}}}]
  - answer: "{value}"
"""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables as wide as they want to be, so assertions do not depend on wrapping."""
    import evals.cli

    monkeypatch.setattr(evals.cli, "out_console", Console(width=250))
    monkeypatch.setattr(evals.cli, "err_console", Console(width=250, stderr=True))


@pytest.fixture
def suite(tmp_path) -> Path:
    write_suite(tmp_path / "suite", {
        "add-task": TASK.format(id="add-task", expr="17+25", value=42),
        "mul-task": TASK.format(id="mul-task", expr="17*23", value=391),
    })
    return tmp_path / "suite"


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_the_real_suite(capsys):
    """The CI gate: under every shipped profile (the default), every task of tasks/ is passed
    by its oracle and by no do-nothing model."""
    code, out, err = cli(capsys, "--validate", "--suite", ROOT / "tasks", "--jobs", "2")
    text = " ".join(out.split())
    assert "v1: oracle passes 20/20, null passes 0/20; v2: oracle passes 20/20, null passes 0/20" in text, out + err
    assert "suite valid" in text
    assert code == 0


def test_validate_reports_an_invalid_task(tmp_path, capsys):
    root = tmp_path / "bad"
    write_suite(root, {
        "good-task": TASK.format(id="good-task", expr="1+1", value=2),
        # passable by doing nothing: the check only asks that a file stays absent
        "lazy-task": """
            id: lazy-task
            category: files
            difficulty: easy
            instruction: Do not create out.txt.
            checks:
              - {type: file, path: out.txt, exists: false}
            oracle:
              - answer: done
        """,
        "no-oracle": """
            id: no-oracle
            category: qa
            difficulty: easy
            instruction: Say hi.
            checks:
              - {type: answer, contains: hi}
        """,
    })
    code, out, _ = cli(capsys, "--validate", "--suite", root, "--agent", "v2")
    text = " ".join(out.split())
    assert code == 1
    assert "null passes under v2: a do-nothing agent satisfies every check" in text
    assert "no oracle" in text
    assert "v2: oracle passes 2/3, null passes 1/3" in text and "2 invalid task(s)" in text
    assert "v1" not in text  # --agent narrows the profiles checked


def test_run_report_compare_and_show(suite, tmp_path, capsys):
    out_dir = tmp_path / "runs"
    code, out, _ = cli(capsys, "--suite", suite, "--model", "oracle", "--model", "null", "--agent", "v1,v2",
                       "--jobs", "2", "--out", out_dir)
    assert code == 0
    assert "oracle / v1" in out and "null / v2" in out and "wall time" in out
    db = out_dir / "evals.db"
    runs = [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM runs ORDER BY rowid")]
    assert len(runs) == 4 and runs[0].endswith("-oracle-v1") and runs[3].endswith("-null-v2")
    trajectories = sorted(p.name for p in (out_dir / "evals" / runs[0]).glob("*.jsonl"))
    assert trajectories == ["add-task.e1.jsonl", "mul-task.e1.jsonl"]

    code, out, _ = cli(capsys, "report", "latest", "--format", "json", "--out", out_dir)
    data = json.loads(out)
    assert code == 0 and [r["success_rate"] for r in data["runs"]] == [1.0, 1.0, 0.0, 0.0]

    html_file = tmp_path / "report.html"
    code, _, err = cli(capsys, "report", runs[0], "--format", "html", "-o", html_file, "--db", db)
    assert code == 0 and html_file.read_text().startswith("<!doctype html>") and f"wrote {html_file}" in err
    code, out, _ = cli(capsys, "report", runs[0][:22], "--format", "md", "--out", out_dir)  # batch prefix
    assert out.count("| add-task |") == 1 and "oracle / v2" in out

    code, _, err = cli(capsys, "report", "nope", "--out", out_dir)
    assert code == 1 and "no run or batch 'nope'" in err
    code, out, _ = cli(capsys, "compare", runs[3], runs[1], "--format", "json", "--out", out_dir)
    comparison = json.loads(out)
    assert code == 0 and comparison["b_better"] == 2 and comparison["p_value"] == 0.5

    code, out, _ = cli(capsys, "show", runs[1], "mul-task", "--out", out_dir)
    assert code == 0 and "status passed" in out and "calculator" in out and "391" in out


def test_resume_reruns_only_missing_attempts(suite, tmp_path, capsys):
    out_dir = tmp_path / "runs"
    profile = tmp_path / "serial.yaml"
    profile.write_text("extends: v2\ntools: {parallel: false}\n")
    assert cli(capsys, "--suite", suite, "--model", "oracle", "--agent", profile, "--out", out_dir)[0] == 0
    profile.unlink()  # resume uses the profile stored with the run
    db = sqlite3.connect(out_dir / "evals.db")
    (run_id,) = db.execute("SELECT id FROM runs").fetchone()
    kept = db.execute("SELECT finished_at FROM results WHERE task_id = 'add-task'").fetchone()
    with db:
        db.execute("DELETE FROM results WHERE task_id = 'mul-task'")  # as if interrupted
    code, out, err = cli(capsys, "--resume", run_id, "--out", out_dir)
    assert code == 0, err
    rows = db.execute("SELECT task_id, status, finished_at FROM results ORDER BY task_id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("add-task", "passed"), ("mul-task", "passed")]
    assert rows[0][2] == kept[0]  # the finished attempt was not run again
    code, _, err = cli(capsys, "--resume", run_id, "--model", "oracle", "--out", out_dir)
    assert code == 1 and "drop --model" in err


def test_unreachable_model_url_is_a_named_harness_error(suite, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    code, out, err = cli(capsys, "--suite", suite, "--model", f"dead={url}", "--out", tmp_path / "r")
    assert code == 1
    assert "harness errors (not scored)" in out and "--resume" in err
    code, out, _ = cli(capsys, "report", "latest", "--format", "json", "--out", tmp_path / "r")
    run = json.loads(out)["runs"][0]
    assert run["harness_errors"] == 2 and run["attempts_scored"] == 0
    rows = sqlite3.connect(tmp_path / "r" / "evals.db").execute("SELECT status, error FROM results").fetchall()
    assert all(status == "harness_error" and url in error for status, error in rows)


def test_broken_task_file_stops_the_run_unless_keep_going(suite, tmp_path, capsys):
    (suite / "broken-task.yaml").write_text("id: broken-task\ncategory: qa\n")
    code, _, err = cli(capsys, "--suite", suite, "--model", "oracle", "--out", tmp_path / "r")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broken-task.yaml" in lines[0]
    assert "--keep-going" in lines[0]
    code, out, err = cli(capsys, "--suite", suite, "--model", "oracle", "--keep-going", "--out", tmp_path / "r")
    assert code == 0 and "skipped broken task file" in err and "add-task" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "bogus"], "--model 'bogus': use oracle, null, NAME=URL or NAME=ckpt:PATH"),
        (["--model", "x=ftp://host"], "give an http(s):// URL or ckpt:PATH"),
        (["--model", "x=ckpt:/no/such/dir"], "checkpoint /no/such/dir does not exist"),
        (["--model", "oracle", "--agent", "v9"], "--agent 'v9': unknown profile"),
        ([], "give at least one --model"),
        (["--validate", "--model", "oracle"], "drop --model"),
        (["--epochs", "0", "--model", "oracle"], "--epochs"),
        (["report", "nope"], "no results database at"),
        (["report", "latest", "--format", "pdf"], "use one of table, md, json, html"),
        (["--no-such-flag"], "No such option"),
        (["--model", "oracel"], "--model 'oracel' (did you mean oracle?)"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(suite, tmp_path, capsys, argv, message):
    code, _, err = cli(capsys, "--suite", suite, "--out", tmp_path / "r", *argv) if argv[:1] != ["report"] \
        else cli(capsys, *argv, "--out", tmp_path / "r")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]


def test_the_suite_is_checked_before_the_models(capsys, tmp_path):
    for argv in ([], ["--model", "bogus"], ["--model", "oracle", "--agent", "v9"]):
        code, _, err = cli(capsys, "--suite", tmp_path / "nonexistent", "--out", tmp_path / "r", *argv)
        assert code == 1 and "no such suite directory or task file" in err, (argv, err)
    assert not (tmp_path / "r").exists()


def test_help_shows_examples(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and "iclaw eval --validate --suite tasks/" in " ".join(out.split()) and "compare" in out
    for sub in ("report", "compare", "show"):
        code, out, _ = cli(capsys, sub, "--help")
        assert code == 0 and "Example: iclaw eval " + sub in " ".join(out.split())


@pytest.mark.parametrize("argv", [["-h"], ["report", "-h"], ["compare", "-h"], ["show", "-h"], ["recipe", "-h"]])
def test_dash_h_is_help(capsys, argv):
    code, out, _ = cli(capsys, *argv)
    assert code == 0 and out.startswith("Usage: iclaw eval")


def test_repeatable_options_name_their_value(capsys):
    for argv, shown in ((["--help"], "--model SPEC"), (["recipe", "--help"], "--stage STAGE")):
        code, out, _ = cli(capsys, *argv)
        assert code == 0 and "<list[" not in out and shown in out, out


def test_a_usage_error_names_the_commands_help(capsys):
    code, _, err = cli(capsys, "report", "--no-such-flag")
    [line] = err.strip().splitlines()
    assert code == 2 and line.startswith("error: No such option: --no-such-flag")
    assert line.endswith("(see `iclaw eval report --help`)")


def test_sigterm_stops_a_run_cleanly_and_points_to_resume(tmp_path):
    """SIGTERM cancels the run like Ctrl-C (so a checkpoint's server would be stopped), exit 1."""
    import signal
    import subprocess
    import sys
    import time

    write_suite(tmp_path / "suite", {"slow-task": """
        id: slow-task
        category: parallel
        difficulty: easy
        instruction: Wait for it.
        tools: [calculator]
        mock_tools:
          - {name: slow_api, parameters: {type: object, properties: {q: {type: string}}, required: [q]},
             latency_s: 60, default: "done"}
        checks: [{type: answer, contains: done}]
        oracle:
          - tool_calls: [{name: slow_api, arguments: {q: x}}]
          - answer: done
    """})
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from evals.cli import main; sys.exit(main(sys.argv[1:]))",
         "--suite", str(tmp_path / "suite"), "--model", "oracle", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    def planned() -> bool:
        if not (out / "evals.db").is_file():
            return False
        try:
            return sqlite3.connect(out / "evals.db").execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        except sqlite3.Error:
            return False

    deadline = time.monotonic() + 60
    while not planned() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the attempt is now inside the 60 s mock call
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "error: interrupted; finish it with `iclaw eval --resume" in err
    assert "Traceback" not in err
