"""`calculator`: arithmetic by walking a Python AST, never `eval`.

Allowed: numbers, + - * / // % **, parentheses, unary signs, the constants pi, e, tau
and a few math functions. Exponents and intermediate integers are bounded so `9**9**9`
fails fast instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator

from pydantic import BaseModel, ConfigDict, Field

from iclaw.errors import ToolError
from iclaw.tools.tool import Tool

__all__ = ["calculator_tool", "evaluate"]

_MAX_BITS = 4096
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_FUNCTIONS = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
    "abs": abs,
    "min": min,
    "max": max,
}


class CalculatorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expression: str = Field(description="e.g. 17*23 or sqrt(2)/3")


def evaluate(expression: str) -> int | float:
    """Value of `expression`; `ToolError(kind="invalid_arguments")` for anything not arithmetic."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"cannot parse {expression!r}: {exc.msg}", "invalid_arguments") from exc
    try:
        return _eval(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as exc:
        raise ToolError(f"cannot evaluate {expression!r}: {exc}", "invalid_arguments") from exc


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and right * abs(left).bit_length() > _MAX_BITS:
                raise ToolError(f"{left}**{right} is too large to compute", "invalid_arguments")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, int) and result.bit_length() > _MAX_BITS:
            raise ToolError("the result is too large to compute", "invalid_arguments")
        return result
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        raise ToolError("'^' is not a power here; write ** for powers (2**10)", "invalid_arguments")
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*[_eval(arg) for arg in node.args])
    raise ToolError(
        f"unsupported element {ast.unparse(node)!r}; use numbers, + - * / // % **, parentheses, "
        f"{', '.join(_CONSTANTS)} and {', '.join(_FUNCTIONS)}",
        "invalid_arguments",
    )


def _format(value: int | float) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".12g")
    return str(value)


def calculator_tool() -> Tool:
    async def calculator(args: CalculatorArgs) -> str:
        return _format(evaluate(args.expression))

    return Tool("calculator", "Evaluate an arithmetic expression exactly.", calculator, CalculatorArgs)
