"""Edit a file, then re-run its tests: run them (they fail), read the module, fix the one wrong
line with `edit_file`, run them again (they pass), say what changed.

Each bug is a small template with drawn numbers; the module and test file names come
from the word pools. The tests really run (pytest through `run_shell` or `run_python`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evals.synth.episode import Episode, Recipe, Style
from evals.synth.families.common import answer, call, calls, phrase, reply, tool_reply, tools_for
from evals.synth.vocab import NOUNS, pick

__all__ = ["edit_tests"]

# Third-party pytest plugins cost seconds at start-up and add nothing to these tests.
_NO_PLUGINS = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class _Bug:
    function: str
    body: str  # the module source with {line}
    wrong: str
    right: str
    tests: str  # assertions, one per line, using the function
    what: str  # one-line explanation for the final answer


def _bugs(rng: random.Random) -> list[_Bug]:
    lo, hi = rng.randint(-20, 5), rng.randint(10, 90)
    size = rng.randint(2, 4)
    n = size * rng.randint(2, 3) + 1
    c = rng.choice([0, 15, 40, 100])
    return [
        _Bug(
            "clamp",
            'def clamp(value, low, high):\n    """`value` limited to low..high."""\n    if value < low:\n        return low\n'
            "    if value > high:\n{line}\n    return value\n",
            "        return low", "        return high",
            f"assert clamp({lo + 1}, {lo}, {hi}) == {lo + 1}\nassert clamp({lo - 7}, {lo}, {hi}) == {lo}\n"
            f"assert clamp({hi + 9}, {lo}, {hi}) == {hi}",
            "values above the range now return `high` instead of `low`",
        ),
        _Bug(
            "chunk",
            'def chunk(items, size):\n    """`items` split into lists of at most `size` items."""\n{line}\n',
            "    return [items[i:i + size] for i in range(0, len(items) - size, size)]",
            "    return [items[i:i + size] for i in range(0, len(items), size)]",
            f"assert chunk(list(range({n})), {size})[-1] == [{n - 1}]\nassert len(chunk(list(range({n})), {size})) == {-(-n // size)}\n"
            f"assert chunk([], {size}) == []",
            "the range now runs to len(items), so the last, shorter chunk is kept",
        ),
        _Bug(
            "to_fahrenheit",
            'def to_fahrenheit(celsius):\n    """Degrees Celsius in Fahrenheit."""\n{line}\n',
            "    return celsius * 9 / 5 + 23", "    return celsius * 9 / 5 + 32",
            f"assert to_fahrenheit(0) == 32\nassert to_fahrenheit({c}) == {c * 9 / 5 + 32}",
            "the offset is 32, not 23",
        ),
        _Bug(
            "count_vowels",
            'def count_vowels(text):\n    """Number of vowels (a, e, i, o, u) in `text`, any case."""\n{line}\n',
            '    return sum(1 for ch in text.lower() if ch in "aeio")',
            '    return sum(1 for ch in text.lower() if ch in "aeiou")',
            'assert count_vowels("Unusual") == 4\nassert count_vowels("rhythm") == 0\nassert count_vowels("Queue") == 4',
            "'u' was missing from the vowels",
        ),
        _Bug(
            "mean",
            'def mean(values):\n    """Arithmetic mean of a non-empty list."""\n{line}\n',
            "    return sum(values) / (len(values) + 1)", "    return sum(values) / len(values)",
            f"assert mean([{lo}, {hi}]) == {(lo + hi) / 2}\nassert mean([7]) == 7",
            "it divided by len(values) + 1 instead of len(values)",
        ),
        _Bug(
            "is_leap",
            'def is_leap(year):\n    """True for Gregorian leap years."""\n{line}\n',
            "    return year % 4 == 0 and year % 100 != 0",
            "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)",
            "assert is_leap(2024)\nassert not is_leap(1900)\nassert is_leap(2000)",
            "years divisible by 400 (like 2000) are leap years again",
        ),
    ]


def edit_tests(rng: random.Random, style: Style) -> Episode:
    bug = rng.choice(_bugs(rng))
    module = f"{pick(rng, NOUNS)}_{rng.choice(['calc', 'helpers', 'funcs', 'lib'])}"
    path, test_path = f"{module}.py", f"tests/test_{module}.py"
    source = f'"""Small {module.split("_")[0]} helpers."""\n\n\n' + bug.body.format(line=bug.wrong)
    tests = f"from {module} import {bug.function}\n\n\n" + "".join(
        f"def test_{bug.function}_{i}():\n    {line}\n\n\n" for i, line in enumerate(bug.tests.splitlines(), 1)
    ).rstrip() + "\n"
    files = {path: source, test_path: tests}
    instruction = phrase(rng, [
        "The tests in {tests} fail. Fix {path} so that they pass; do not touch the tests.",
        "`python -m pytest tests` is red. Find the bug in {path} and fix it (leave {tests} as it is).",
        "{fn} in {path} has a bug that {tests} catches. Fix it and make sure the tests pass.",
    ], tests=test_path, path=path, fn=bug.function)
    if rng.random() < 0.75:
        check = call("run_shell", command=f"{_NO_PLUGINS}=1 python -m pytest -q -p no:cacheprovider tests")
        runner = "run_shell"
    else:
        check = call("run_python", code="import os, subprocess, sys\n"
                     f"env = dict(os.environ, {_NO_PLUGINS}='1')\n"
                     "sys.exit(subprocess.call([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'], env=env))\n")
        runner = "run_python"
    fix = call("edit_file", path=path, search=bug.wrong, replace=bug.right)
    final = f"Fixed {bug.function} in {path}: {bug.what}. The tests pass now."
    turns = [calls(check), calls(call("read_file", path=path)), calls(fix), calls(check), answer(final)]
    tools = tools_for(rng, ["read_file", "edit_file", runner], ["write_file", "list_dir", "grep"])
    rejections = [
        reply(3, "stopped_early", final.replace(" The tests pass now.", "")),
        # Edits without reading first: tabs guessed for the indentation, so the search text is not in the file.
        tool_reply(1, "invented_content", call("edit_file", path=path, search=bug.wrong.replace("    ", "\t"),
                                               replace=bug.right.replace("    ", "\t"))),
        reply(1, "stopped_early", f"The tests fail in {bug.function}; {path} needs a fix."),
    ]
    return Episode("edit_tests", instruction, Recipe(files, tools), turns, rejections, evidence=["failed", "passed"])
