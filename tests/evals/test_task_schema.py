import textwrap
from pathlib import Path

import pytest

from evals.errors import TaskError
from evals.file_spec import FromFile
from evals.task import load_suite, load_task

GOOD = """
id: {id}
category: data
difficulty: easy
instruction: Which customer has the highest total?
workspace:
  files:
    sales.csv: {{from: fixtures/sales.csv}}
    notes.txt: "inline text"
checks:
  - {{type: answer, contains: Acme}}
oracle:
  - tool_calls: [{{name: read_file, arguments: {{path: sales.csv}}}}]
  - answer: Acme
"""


def write_task(root: Path, name: str, text: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "sales.csv").write_text("customer,amount\nAcme,3\n")
    write_task(tmp_path, "good-task", GOOD.format(id="good-task"))
    return tmp_path


def test_good_task_loads_with_resolved_fixture(suite_dir: Path):
    task = load_task(suite_dir / "good-task.yaml")
    src = task.workspace.files["sales.csv"]
    assert isinstance(src, FromFile) and src.source == (suite_dir / "fixtures" / "sales.csv").resolve()
    assert task.workspace.files["notes.txt"] == "inline text"
    assert task.oracle[0].to_script() == {"tool_calls": [{"name": "read_file", "arguments": {"path": "sales.csv"}}]}
    assert task.path == (suite_dir / "good-task.yaml").resolve()
    assert len(task.digest) == 64


def test_digest_changes_with_fixture_content(suite_dir: Path):
    before = load_task(suite_dir / "good-task.yaml").digest
    (suite_dir / "fixtures" / "sales.csv").write_text("customer,amount\nGlobex,9\n")
    assert load_task(suite_dir / "good-task.yaml").digest != before


def test_digest_covers_the_fixtures_a_check_brings(suite_dir: Path):
    """The pristine tests of a pytest check are part of the task version."""
    (suite_dir / "fixtures" / "test_x.py").write_text("def test(): pass\n")
    text = GOOD.format(id="tested-task").replace(
        "{type: answer, contains: Acme}",
        "{type: pytest, copy: [x.py], tests: {tests/test_x.py: {from: fixtures/test_x.py}}, expect_passed: 1}")
    path = write_task(suite_dir, "tested-task", text)
    before = load_task(path).digest
    (suite_dir / "fixtures" / "test_x.py").write_text("def test(): assert 1\n")
    assert load_task(path).digest != before


@pytest.mark.parametrize(
    "edit, field, words",
    [
        (("difficulty: easy", "difficulty: trivial"), "difficulty", "easy"),
        (("category: data", "category: poetry"), "category", "qa"),
        (("{from: fixtures/sales.csv}", "{from: fixtures/missing.csv}"), "workspace.files.sales.csv.from", "not found"),
        (("sales.csv: {from", "../escape.csv: {from"), "workspace.files", "relative path"),
        (("{type: answer, contains: Acme}", "{type: answer, regex: '(unclosed'}"), "checks.0.answer.regex", "invalid regular expression"),
        (("{type: answer, contains: Acme}", "{type: answer}"), "checks.0.answer", "needs one of"),
        (("{type: answer, contains: Acme}", "{type: telepathy}"), "checks.0", "type"),
        (("- answer: Acme", "- answer: Acme\n    tool_calls: []"), "oracle.1", "exactly one"),
        (("instruction:", "instructions:"), "instructions", "Extra inputs"),
    ],
)
def test_schema_errors_name_file_and_field(suite_dir: Path, edit, field, words):
    text = GOOD.format(id="bad-task").replace(*edit)
    path = write_task(suite_dir, "bad-task", text)
    with pytest.raises(TaskError) as err:
        load_task(path)
    message = str(err.value)
    assert str(path) in message
    assert field in message
    assert words in message


def test_unknown_tool_and_fault_for_missing_tool(suite_dir: Path):
    path = write_task(suite_dir, "t1", GOOD.format(id="t1") + "tools: [read_file, teleport]\n")
    with pytest.raises(TaskError, match=r"tools: .*unknown built-in tool 'teleport'"):
        load_task(path)
    faulty = GOOD.format(id="t2") + "tools: [read_file]\nfaults:\n  - {tool: run_shell, calls: [1], error: boom}\n"
    with pytest.raises(TaskError, match="faults: tool 'run_shell' is not among"):
        load_task(write_task(suite_dir, "t2", faulty))


def test_id_must_match_file_name(suite_dir: Path):
    path = write_task(suite_dir, "other-name", GOOD.format(id="good-task"))
    with pytest.raises(TaskError, match="must equal the file name 'other-name'"):
        load_task(path)


def test_invalid_yaml_reports_line(suite_dir: Path):
    path = write_task(suite_dir, "broken", "id: broken\ninstruction: [unclosed\n")
    with pytest.raises(TaskError, match=r"broken.yaml: invalid YAML \(line \d+\)"):
        load_task(path)


def test_broken_file_stops_the_suite_unless_keep_going(suite_dir: Path):
    write_task(suite_dir, "broken", "id: broken\ncategory: qa\n")
    with pytest.raises(TaskError, match=r"broken.yaml: .*--keep-going"):
        load_suite(suite_dir)
    suite = load_suite(suite_dir, keep_going=True)
    assert [t.id for t in suite.tasks] == ["good-task"]
    assert len(suite.broken) == 1 and "broken.yaml" in str(suite.broken[0])


def test_suite_filter_and_empty_suite(suite_dir: Path, tmp_path_factory):
    write_task(suite_dir, "second-task", GOOD.format(id="second-task"))
    assert [t.id for t in load_suite(suite_dir, only=["second-*"]).tasks] == ["second-task"]
    with pytest.raises(TaskError, match="no task matches"):
        load_suite(suite_dir, only=["nothing-*"])
    with pytest.raises(TaskError, match="no task files"):
        load_suite(tmp_path_factory.mktemp("empty"))
    with pytest.raises(TaskError, match="no such suite"):
        load_suite(suite_dir / "missing")
