"""A small, safe expression language for mapping files, compiled once into Python closures.

Expressions use Python's own expression syntax, parsed with ``ast`` and then rebuilt node by node
from an allow-list; nothing is ever passed to ``eval``. What is allowed:

* names bound by the node's ``with`` block, and the literals ``None``, ``True``, ``False``;
* text and number literals (a literal such as ``1.21`` becomes an exact ``Decimal``, never a float);
* ``+ - * /`` on numbers (``+`` also joins text), comparisons, ``and``/``or``/``not``, ``a if c else b``;
* calls of the functions in ``FUNCTIONS`` by name, with positional arguments.

Anything else (attributes, subscripts, lambdas, comprehensions, keyword arguments, unknown names or
functions) is refused at load time with the position of the offending part.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from saleshub.mapping.coercions import to_decimal

__all__ = ["FUNCTIONS", "CompiledExpression", "Env", "Evaluator", "ExpressionError", "compile_expression"]

Env = Mapping[str, Any]
Evaluator = Callable[[Env], Any]


class ExpressionError(ValueError):
    """An expression is not allowed or not well-formed; ``column`` is 1-based when known."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        where = f" (at column {column})" if column is not None else ""
        super().__init__(f"{message}{where}")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _concat(*parts: Any) -> str:
    return "".join(_text(p) for p in parts)


def _join(separator: str, *parts: Any) -> str:
    return separator.join(_text(p) for p in parts if p is not None and _text(p) != "")


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def _to_decimal(value: Any) -> Decimal | None:
    # The coercion bounds the number (digits, exponent) before any arithmetic or rounding sees it.
    return None if value is None else to_decimal(value)


def _round(value: Any, places: int = 0) -> Decimal | None:
    number = _to_decimal(value)
    if number is None:
        return None
    return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def _split_part(value: Any, separator: str, index: int) -> str | None:
    if value is None:
        return None
    parts = str(value).split(separator)
    return parts[index - 1] if 1 <= index <= len(parts) else None


def _on_text(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return None if value is None else fn(str(value))

    return apply


#: The only functions an expression may call.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "concat": _concat,
    "join": _join,
    "coalesce": _coalesce,
    "upper": _on_text(str.upper),
    "lower": _on_text(str.lower),
    "trim": _on_text(str.strip),
    "length": _on_text(len),
    "left": lambda v, n: None if v is None else str(v)[:n],
    "right": lambda v, n: None if v is None else str(v)[-n:] if n else "",
    "replace": lambda v, old, new: None if v is None else str(v).replace(old, new),
    "split_part": _split_part,
    "starts_with": lambda v, p: v is not None and str(v).startswith(p),
    "ends_with": lambda v, p: v is not None and str(v).endswith(p),
    "contains": lambda v, p: v is not None and p in str(v),
    "decimal": _to_decimal,
    "round": _round,
    "abs": lambda v: None if v is None else abs(_to_decimal(v) or 0),
    "min": lambda *vs: min(v for v in vs if v is not None),
    "max": lambda *vs: max(v for v in vs if v is not None),
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class _Compiler:
    def __init__(self, source: str, names: frozenset[str]) -> None:
        self.source = source
        self.names = names
        self.used: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(message, getattr(node, "col_offset", -1) + 1)

    def compile(self, node: ast.AST) -> Evaluator:
        handler = getattr(self, f"_{type(node).__name__}", None)
        if handler is None:
            raise self.fail(node, f"{type(node).__name__} is not allowed in a mapping expression")
        result: Evaluator = handler(node)
        return result

    def _Constant(self, node: ast.Constant) -> Evaluator:
        value: object = node.value
        if isinstance(value, float):
            text = ast.get_source_segment(self.source, node) or repr(value)
            value = Decimal(text)
        elif not isinstance(value, str | int | bool | type(None)):
            raise self.fail(node, f"literal {value!r} is not allowed")
        return lambda env: value

    def _List(self, node: ast.List) -> Evaluator:
        items = [self.compile(item) for item in node.elts]
        return lambda env: [item(env) for item in items]

    _Tuple = _List

    def _Name(self, node: ast.Name) -> Evaluator:
        if node.id not in self.names:
            known = ", ".join(sorted(self.names)) or "none"
            raise self.fail(node, f"unknown name {node.id!r} (names bound by `with`: {known})")
        self.used.add(node.id)
        name = node.id
        return lambda env: env[name]

    def _BinOp(self, node: ast.BinOp) -> Evaluator:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda env: op(left(env), right(env))

    def _UnaryOp(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        if isinstance(node.op, ast.USub):
            return lambda env: -operand(env)
        raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")

    def _BoolOp(self, node: ast.BoolOp) -> Evaluator:
        values = [self.compile(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(v(env) for v in values)
        return lambda env: any(v(env) for v in values)

    def _Compare(self, node: ast.Compare) -> Evaluator:
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not allowed; use `and`")
        op = _COMPARE[type(node.ops[0])]
        left, right = self.compile(node.left), self.compile(node.comparators[0])
        return lambda env: op(left(env), right(env))

    def _IfExp(self, node: ast.IfExp) -> Evaluator:
        test, body, orelse = self.compile(node.test), self.compile(node.body), self.compile(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def _Call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            known = ", ".join(sorted(FUNCTIONS))
            raise self.fail(node, f"function {name!r} is not allowed; allowed: {known}")
        if node.keywords:
            raise self.fail(node, "keyword arguments are not allowed")
        fn = FUNCTIONS[node.func.id]
        args = [self.compile(arg) for arg in node.args]
        return lambda env: fn(*(arg(env) for arg in args))


class CompiledExpression:
    """An expression checked and compiled at load; call ``evaluate`` with the ``with`` values."""

    __slots__ = ("_evaluate", "names", "source")

    def __init__(self, source: str, evaluate: Evaluator, names: frozenset[str]) -> None:
        self.source, self._evaluate, self.names = source, evaluate, names

    def evaluate(self, env: Env) -> Any:
        """The expression's value for these bindings; errors carry the expression text."""
        return self._evaluate(env)


def compile_expression(source: str, names: frozenset[str]) -> CompiledExpression:
    """Parse and check ``source``; ``names`` are the variables the ``with`` block binds."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg}", exc.offset) from None
    compiler = _Compiler(source.strip(), names)
    evaluate = compiler.compile(tree.body)
    unused = names - compiler.used
    if unused:
        raise ExpressionError(f"`with` binds {', '.join(sorted(unused))} but the expression never uses it")
    return CompiledExpression(source, evaluate, names)
