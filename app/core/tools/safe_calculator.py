"""Arithmetic for the built-in calculator tool, without ``eval``.

The expression comes from the model, so it is untrusted: it is parsed with Python's own parser
(``ast``) and only numbers, the four operations, ``//``, ``%``, powers, parentheses and a fixed
list of ``math`` functions and constants are evaluated; everything else is refused with a
message the model can act on. Sizes are bounded before any work: the text's length, how deeply
it nests, and powers and factorials whose results would be huge (``9**9**9`` would otherwise
take minutes and gigabytes).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_EXPRESSION_CHARACTERS = 500
MAX_DEPTH = 40
MAX_RESULT_DIGITS = 1000  # an integer result longer than this is refused, not computed
MAX_FACTORIAL = 450  # 450! has 1,000 digits


class CalculationError(ValueError):
    """The expression cannot be calculated; the message says why, for the model to read."""


_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _factorial(value: float) -> int:
    if value != int(value) or value < 0:
        raise CalculationError("factorial() takes a whole number of at least 0.")
    if value > MAX_FACTORIAL:
        raise CalculationError(f"factorial() of more than {MAX_FACTORIAL} is too large to calculate.")
    return math.factorial(int(value))


FUNCTIONS: dict[str, Callable[..., float]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "floor": math.floor,
    "ceil": math.ceil,
    "hypot": math.hypot,
    "factorial": _factorial,
    "gcd": math.gcd,
}
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}


def calculate(expression: str) -> str:
    """The value of ``expression`` as text (whole numbers without ".0"); raises
    ``CalculationError``."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculationError("Give an expression to calculate, such as 2 * (3 + 4).")
    if len(expression) > MAX_EXPRESSION_CHARACTERS:
        raise CalculationError(f"The expression is longer than {MAX_EXPRESSION_CHARACTERS} characters.")
    text = expression.replace("^", "**").replace("×", "*").replace("÷", "/").replace("−", "-")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        raise CalculationError(f"{expression!r} is not an arithmetic expression.") from None
    except RecursionError:
        raise CalculationError("The expression nests too deeply.") from None
    try:
        value = _evaluate(tree.body, 1)
    except ZeroDivisionError:
        raise CalculationError("Division by zero.") from None
    except OverflowError:
        raise CalculationError("The result is too large to calculate.") from None
    except (ValueError, TypeError) as error:
        if isinstance(error, CalculationError):
            raise
        raise CalculationError(f"Cannot calculate {expression!r}: {error}.") from None
    return _text(value)


def _evaluate(node: ast.AST, depth: int) -> float:
    if depth > MAX_DEPTH:
        raise CalculationError("The expression nests too deeply.")
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
        arguments = [_evaluate(argument, depth + 1) for argument in node.args]
        return FUNCTIONS[node.func.id](*arguments)
    if isinstance(node, ast.Name):
        raise CalculationError(f"Unknown name {node.id!r}. Known: {', '.join(sorted(FUNCTIONS | CONSTANTS))}.")
    raise CalculationError("Only numbers, + - * / // % ** (or ^), parentheses and math functions are allowed.")


def _check_power(base: float, exponent: float) -> None:
    """Refuses powers whose result would have more than ``MAX_RESULT_DIGITS`` digits, before
    Python spends minutes computing them."""
    if abs(base) <= 1 or exponent <= 0:
        return
    if exponent * math.log10(abs(base)) > MAX_RESULT_DIGITS:
        raise CalculationError(f"The result would have more than {MAX_RESULT_DIGITS} digits.")


def _text(value: float) -> str:
    if isinstance(value, int):
        if abs(value) >= 10**MAX_RESULT_DIGITS:
            raise CalculationError(f"The result would have more than {MAX_RESULT_DIGITS} digits.")
        return str(value)
    if math.isnan(value):
        raise CalculationError("The result is not a number.")
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)
