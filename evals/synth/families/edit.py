"""Families that change code and check it: fix a bug the tests catch (run the tests, read, fix
the one wrong line with `edit_file`, run them again), implement a stub from its docstring,
rename a function across a package (grep, edits in one turn, grep again).

Bugs and stubs are small templates with drawn numbers; module, package and test file
names come from the word pools. The tests really run (pytest through `run_shell` or
`run_python`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evals.synth.episode import Episode, Recipe, Style
from evals.synth.families.common import answer, call, calls, phrase, repeated, reply, tool_reply, tools_for
from evals.synth.vocab import NOUNS, pick, sample

__all__ = ["edit_tests", "implement_function", "rename_symbol"]

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
        repeated(1, check),  # the red test run again, nothing changed
        reply(3, "stopped_early", final.replace(" The tests pass now.", "")),
        # Edits without reading first: tabs guessed for the indentation, so the search text is not in the file.
        tool_reply(1, "invented_content", call("edit_file", path=path, search=bug.wrong.replace("    ", "\t"),
                                               replace=bug.right.replace("    ", "\t"))),
        reply(1, "stopped_early", f"The tests fail in {bug.function}; {path} needs a fix."),
    ]
    return Episode("edit_tests", instruction, Recipe(files, tools), turns, rejections, evidence=["failed", "passed"])


@dataclass(frozen=True)
class _Stub:
    function: str
    doc: str
    body: str  # the implementation, indented four spaces
    tests: list[str]


def _stubs(rng: random.Random) -> list[_Stub]:
    a, b = rng.sample(range(2, 60), 2)
    k = rng.randint(1, 7)
    seq = list(range(1, rng.randint(4, 7)))
    rotated = seq[k % len(seq):] + seq[:k % len(seq)]
    return [
        _Stub("dedupe", "`items` without repeats: the first occurrence kept, order preserved.",
              "    seen = set()\n    out = []\n    for item in items:\n        if item not in seen:\n"
              "            seen.add(item)\n            out.append(item)\n    return out",
              [f"assert dedupe([{a}, {b}, {a}, {b}, {a}]) == [{a}, {b}]", "assert dedupe([]) == []"]),
        _Stub("parse_duration", "Seconds in a duration such as '1h30m', '45s' or '2h5s' (units h, m, s).",
              "    import re\n    units = {'h': 3600, 'm': 60, 's': 1}\n"
              "    return sum(int(n) * units[u] for n, u in re.findall(r'(\\d+)([hms])', text))",
              [f"assert parse_duration('{a}m') == {a * 60}", f"assert parse_duration('1h{b}s') == {3600 + b}",
               "assert parse_duration('2h30m') == 9000"]),
        _Stub("initials", "Upper-case initials with dots: 'grace brewster hopper' -> 'G.B.H.'.",
              "    return ''.join(word[0].upper() + '.' for word in text.split())",
              ["assert initials('grace brewster hopper') == 'G.B.H.'", "assert initials('x') == 'X.'"]),
        _Stub("rotate", "`items` rotated left by k places (k may exceed the length; an empty list stays empty).",
              "    if not items:\n        return []\n    k %= len(items)\n    return items[k:] + items[:k]",
              [f"assert rotate({seq}, {k}) == {rotated}", f"assert rotate([], {k}) == []"]),
        _Stub("is_palindrome", "True when `text` reads the same backwards, ignoring case and anything not a letter or digit.",
              "    kept = [ch.lower() for ch in text if ch.isalnum()]\n    return kept == kept[::-1]",
              ["assert is_palindrome('Never odd or even')", "assert not is_palindrome('palindrome')"]),
    ]


def _arguments(stub: _Stub) -> str:
    return {"dedupe": "items", "parse_duration": "text", "initials": "text", "rotate": "items, k",
            "is_palindrome": "text"}[stub.function]


def implement_function(rng: random.Random, style: Style) -> Episode:
    stub = rng.choice(_stubs(rng))
    module = f"{pick(rng, NOUNS)}_{rng.choice(['text', 'util', 'tools', 'ops'])}"
    path, test_path = f"{module}.py", f"tests/test_{module}.py"
    source = (f'"""{module.split("_")[0].capitalize()} utilities."""\n\n\n'
              f'def {stub.function}({_arguments(stub)}):\n    """{stub.doc}"""\n    raise NotImplementedError("not written yet")\n')
    tests = f"from {module} import {stub.function}\n\n\n" + "".join(
        f"def test_{stub.function}_{i}():\n    {line}\n\n\n" for i, line in enumerate(stub.tests, 1)
    ).rstrip() + "\n"
    instruction = phrase(rng, [
        "Implement {fn} in {path} as its docstring says; {tests} must pass.",
        "{path} has a stub for {fn}. Write it (follow the docstring) and check it with the tests in {tests}.",
    ], fn=stub.function, path=path, tests=test_path)
    check = call("run_shell", command=f"{_NO_PLUGINS}=1 python -m pytest -q -p no:cacheprovider {test_path}")
    fill = call("edit_file", path=path, search='    raise NotImplementedError("not written yet")', replace=stub.body)
    final = f"Implemented {stub.function} in {path}; the tests pass."
    turns = [calls(call("read_file", path=path)), calls(fill), calls(check), answer(final)]
    tools = tools_for(rng, ["read_file", "edit_file", "run_shell"], ["write_file", "list_dir", "run_python"])
    rejections = [
        reply(2, "stopped_early", final.replace("; the tests pass.", ".")),
        tool_reply(0, "invented_content", fill),  # writes code without having read the file
    ]
    return Episode("implement_function", instruction, Recipe({path: source, test_path: tests}, tools), turns,
                   rejections, evidence=["passed"])


def rename_symbol(rng: random.Random, style: Style) -> Episode:
    pkg = f"{pick(rng, NOUNS)}kit"
    core, user, other = (f"{n}" for n in sample(rng, [n for n in NOUNS if not pkg.startswith(n)], 3))
    verb, noun = rng.choice(["load", "score", "merge", "render"]), pick(rng, ["rows", "items", "lines", "entries"])
    old, new = f"{verb}_{noun}", f"{verb}_all_{noun}"
    n = rng.randint(2, 9)
    files = {
        f"{pkg}/{core}.py": f'"""Core of {pkg}."""\n\n\ndef {old}(values):\n    return [v * {n} for v in values]\n',
        f"{pkg}/{user}.py": f'"""Uses the core."""\n\nfrom {pkg}.{core} import {old}\n\n\ndef total(values):\n    return sum({old}(values))\n',
        f"{pkg}/{other}.py": f'"""Unrelated helpers."""\n\n\ndef {verb}_one(value):\n    return value + {n}\n',
    }
    instruction = phrase(rng, [
        "Rename the function {old} to {new} everywhere in {pkg}/ (definition, imports, calls). No alias for the old name.",
        "In the {pkg} package, {old} should be called {new}. Change every use, then check nothing mentions {old} any more.",
    ], old=old, new=new, pkg=pkg)
    edits = [
        call("edit_file", path=f"{pkg}/{core}.py", search=f"def {old}(", replace=f"def {new}("),
        call("edit_file", path=f"{pkg}/{user}.py", search=f"import {old}", replace=f"import {new}"),
        call("edit_file", path=f"{pkg}/{user}.py", search=f"sum({old}(", replace=f"sum({new}("),
    ]
    check = call("run_python", code=f"from {pkg}.{user} import total\nprint(total([1, 2, 3]))\n")
    turns = [calls(call("grep", pattern=old, path=pkg)), calls(*edits), calls(call("grep", pattern=old, path=pkg)),
             calls(check), answer(f"Renamed {old} to {new} in {pkg}/{core}.py and {pkg}/{user}.py; nothing refers to {old} now.")]
    tools = tools_for(rng, ["grep", "edit_file", "run_python"], ["read_file", "list_dir", "run_shell"])
    rejections = [
        reply(2, "stopped_early", f"Renamed {old} to {new}."),
        tool_reply(1, "wrong_arguments", call("edit_file", path=f"{pkg}/{user}.py", search=old, replace=new)),
    ]
    return Episode("rename_symbol", instruction, Recipe(files, tools), turns, rejections,
                   evidence=[f"no matches for {old!r}", str(6 * n)])
