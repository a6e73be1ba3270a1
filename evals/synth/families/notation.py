"""Arithmetic as people write it, turned into calculator syntax.

Questions use ×, ÷, −, ², ³, √ and ^, words ("times", "squared", "to the power of", "the
square root of"), percentages and thousands separators; the calculator takes none of
them. It wants `*`, `/`, `-`, `**`, `sqrt(...)`, `p/100` and plain digits. `draw_problem`
makes one such question together with the expression the calculator needs and the
expression as written (what a careless call copies, which the real calculator refuses).
`math_notation` converts on the first call; `fix_arguments` (in `repair`) starts from the
copied call, reads the calculator's error and calls again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from iclaw.errors import ToolError
from iclaw.tools.calculator import evaluate

from evals.synth.episode import Episode, Recipe, Style
from evals.synth.families.common import (
    NUMBER_ONLY, SEEN_IN_EVALS, answer, call, calls, number_text, reply, rounded, tool_reply, tools_for,
)
from evals.synth.vocab import NOUNS, pick

__all__ = ["Problem", "draw_problem", "notation_instruction", "math_notation"]

# How each style writes the calculator's operators.
_OPERATORS = {
    "symbols": {"*": " × ", "/": " ÷ ", "-": " − ", "+": " + "},
    "words": {"*": " times ", "/": " divided by ", "-": " minus ", "+": " plus "},
    "ascii": {"*": " x ", "/": " / ", "-": " - ", "+": " + "},
}


@dataclass(frozen=True)
class Problem:
    question: str  # the question as a person asks it
    written: str  # the arithmetic as written there: what a careless call sends
    expression: str  # the same in calculator syntax
    value: float
    decimals: int  # 0 for a whole-number result, else 2
    refusal: str  # the calculator's error for `written`

    @property
    def final(self) -> str:
        return rounded(self.value, self.decimals)


def _grouped(n: int) -> str:
    return f"{n:,}"


def _operand(rng: random.Random, style: str) -> tuple[str, str, str]:
    """(kind, as written, calculator syntax) of one term."""
    kind = rng.choice(["int", "int", "big", "square", "cube", "power", "root"])
    if kind == "int":
        n = rng.randint(12, 999)
        return kind, str(n), str(n)
    if kind == "big":
        n = rng.randint(1_200, 950_000)
        return kind, _grouped(n), str(n)
    if kind == "square":
        b = rng.randint(11, 99)
        return kind, {"symbols": f"{b}²", "words": f"{b} squared", "ascii": f"{b}^2"}[style], f"{b}**2"
    if kind == "cube":
        b = rng.randint(6, 60)
        return kind, {"symbols": f"{b}³", "words": f"{b} cubed", "ascii": f"{b}^3"}[style], f"{b}**3"
    if kind == "power":
        b, n = rng.randint(2, 9), rng.randint(4, 11)
        words = rng.choice([f"{b} to the power of {n}", f"{b} raised to the power {n}"])
        return kind, {"symbols": f"{b}^{n}", "words": words, "ascii": f"{b}^{n}"}[style], f"{b}**{n}"
    r = rng.randint(12, 95)
    x = r * r
    written = {"symbols": f"√{_grouped(x)}", "words": f"the square root of {_grouped(x)}", "ascii": f"sqrt({x})"}[style]
    return kind, written, f"sqrt({x})"


def _expression(rng: random.Random) -> tuple[str, str, str]:
    """(question, as written, calculator syntax) of a two- or three-term expression."""
    style = rng.choice(["symbols", "symbols", "words", "ascii"])
    terms = [_operand(rng, style) for _ in range(rng.randint(2, 3))]
    if style == "words":  # "the square root of 144 plus 5" is ambiguous unless the root comes last
        terms.sort(key=lambda t: t[0] == "root")
    ops = [rng.choice("*/-+") for _ in terms[1:]]
    written = terms[0][1] + "".join(_OPERATORS[style][op] + t[1] for op, t in zip(ops, terms[1:]))
    expression = terms[0][2] + "".join(f" {op} {t[2]}" for op, t in zip(ops, terms[1:]))
    question = rng.choice(["What is {w}?", "Calculate {w}.", "Work out {w}.", "Evaluate {w}.", "How much is {w}?"])
    return question.format(w=written), written, expression


def _percent(rng: random.Random) -> tuple[str, str, str]:
    p = rng.choice([3, 4.5, 6, 7.5, 8, 12, 15, 18, 22, 35, 42, 65])
    x = rng.randint(1_200, 480_000)
    g, shape = _grouped(x), rng.choice(["of", "up", "down", "share"])
    if shape == "of":
        return rng.choice([f"What is {p}% of {g}?", f"Take {p}% of {g}. What do you get?"]), f"{p}% of {g}", f"{p}/100*{x}"
    if shape == "up":
        question = rng.choice([f"{g} increased by {p}% is how much?", f"A price of {g} rises by {p}%. What is the new price?"])
        return question, f"{g} + {p}%", f"{x}*(1 + {p}/100)"
    if shape == "down":
        question = rng.choice([f"What is {g} after a {p}% reduction?", f"A budget of {g} is cut by {p}%. What is left?"])
        return question, f"{g} - {p}%", f"{x}*(1 - {p}/100)"
    y = rng.randint(x // 20, x // 2)
    return f"What percentage of {g} is {_grouped(y)}?", f"{_grouped(y)} ÷ {g} × 100", f"{y}/{x}*100"


def _story(rng: random.Random) -> tuple[str, str, str]:
    thing = pick(rng, NOUNS)
    shape = rng.choice(["area", "volume", "compound", "unit"])
    if shape == "area":
        a = rng.randint(120, 4_800)
        return (f"The {thing} plaza is a square, {_grouped(a)} cm on each side. What is its area in cm²?",
                f"{_grouped(a)}²", f"{a}**2")
    if shape == "volume":
        a = rng.randint(14, 240)
        return f"A cube-shaped {thing} crate has edges of {a} cm. What is its volume in cm³?", f"{a}³", f"{a}**3"
    if shape == "compound":
        x, p, n = rng.randint(2_000, 250_000), rng.choice([2, 2.5, 3, 4.25, 5, 6.5]), rng.randint(3, 15)
        return (f"A deposit of {_grouped(x)} earns {p}% a year, compounded yearly. What is it worth after {n} years?",
                f"{_grouped(x)} × (1 + {p}%)^{n}", f"{x}*(1 + {p}/100)**{n}")
    n, total = rng.randint(12, 480), rng.randint(2_500, 900_000)
    return (f"{n} {thing} badges cost {_grouped(total)} altogether. What does one badge cost?",
            f"{_grouped(total)} ÷ {n}", f"{total}/{n}")


def draw_problem(rng: random.Random) -> Problem:
    """A question in everyday notation whose written form the calculator refuses."""
    while True:
        question, written, expression = rng.choice([_expression, _expression, _percent, _story])(rng)
        try:
            evaluate(written)
        except ToolError as exc:
            value = evaluate(expression)
            whole = float(value).is_integer()
            if 0.5 <= abs(value) < (1e15 if whole else 1e9):  # so that every printed digit is exact
                return Problem(question, written, expression, value, 0 if whole else 2, str(exc))


def notation_instruction(rng: random.Random, problem: Problem) -> str:
    rounding = rng.choice([" Round to two decimals.", " Give it to 2 decimal places."]) if problem.decimals else ""
    tail = rng.choice(["Use the calculator.", "Use the calculator tool.", "Check it with the calculator.", ""])
    return " ".join(f"{problem.question}{rounding} {tail} {rng.choice(NUMBER_ONLY)}".split())


def math_notation(rng: random.Random, style: Style) -> Episode:
    problem = draw_problem(rng)
    turns = [calls(call("calculator", expression=problem.expression)), answer(problem.final)]
    tools = tools_for(rng, ["calculator"], ["run_python"]) if rng.random() < 0.7 else ["calculator"]
    guess = number_text(round(problem.value * rng.choice([0.9, 1.1, 0.97, 1.04]), problem.decimals), problem.decimals)
    rejections = [
        tool_reply(0, "copied_notation", call("calculator", expression=problem.written), weight=SEEN_IN_EVALS),
        reply(1, "unevaluated_answer", problem.written, weight=SEEN_IN_EVALS),
        reply(0, "answer_without_looking", guess),
    ]
    return Episode("math_notation", notation_instruction(rng, problem), Recipe({}, tools), turns, rejections)
