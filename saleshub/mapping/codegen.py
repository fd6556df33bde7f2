"""Turn a compiled mapping into one straight-line Python function, generated once at load.

An interpreter that walks the node tree pays, for every field of every payload, a method call per
node, a scope object per nesting level and a closure per path. The generated function pays none of
that: each field becomes a few inline lines (a dictionary walk or an XPath call, the transforms,
a ``dict.get`` into the crosswalk, a call of the conversion), and path prefixes shared by several
fields (``order.customer``) are walked once per payload. This is how a declarative mapping runs as
fast as the same mapping written by hand.

Safety: the source text is built only from this module's own templates. Everything that comes from
a mapping file (paths, constants, crosswalk tables, field and key names) enters either as a
``repr()`` literal of a ``str``/``int``/``bool``/``None`` (which cannot be anything but that literal)
or as a reference to an object in the function's namespace. Steward expressions are not turned into
source: they stay the closures ``saleshub.mapping.expressions`` built from its allow-list.

The generated function keeps exactly the meaning documented in ``saleshub.mapping.nodes``, including
which errors are reported with which target, source and rule. ``GeneratedMapping.source`` holds the
text, and tracebacks through it show its lines.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from saleshub.errors import FatalError, FieldError
from saleshub.mapping import coercions as co
from saleshub.mapping.nodes import (
    CompiledCondition,
    CompiledFirstOf,
    CompiledList,
    CompiledNode,
    CompiledObject,
    CompiledValue,
    ConstRead,
    ExprRead,
    PathRead,
    PositionRead,
    Read,
    Run,
)
from saleshub.mapping.paths import (
    ChildXmlPath,
    DottedJsonPath,
    child_elements,
    child_index,
    first_attribute,
)

__all__ = ["GeneratedMapping", "ProduceFunction", "generate", "node_source"]

ProduceFunction = Callable[[Any], tuple[dict[str, Any], list[FieldError]]]

_INDENT: Final = "    "
_READ_ERRORS: Final = "(ValueError, TypeError, ArithmeticError)"
# Transforms simple enough to inline as a method call; the others are called from TRANSFORMS.
_INLINE_TRANSFORMS: Final = {"trim": "strip", "upper": "upper", "lower": "lower"}


class _Unread:
    """Marks a value whose path or expression failed (already reported): no default applies."""


class _Reported(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Leaves a value's conversion after its failure was reported (a code missing from a crosswalk)."""


@dataclass(frozen=True, slots=True)
class _Prefix:
    """A text built at run time from literal parts and loop counters, e.g. ``lines[3].``."""

    parts: tuple[tuple[bool, str], ...] = ()  # (is_code, text)

    def plus(self, text: str) -> _Prefix:
        return _Prefix((*self.parts, (False, text)))

    def plus_index(self, variable: str) -> _Prefix:
        return _Prefix((*self.parts, (True, f"str({variable})")))  # variable: a name or an expression

    def code(self) -> str:
        merged: list[tuple[bool, str]] = []
        for is_code, text in self.parts:
            if not is_code and merged and not merged[-1][0]:
                merged[-1] = (False, merged[-1][1] + text)
            else:
                merged.append((is_code, text))
        if not merged:
            return "''"
        return " + ".join(text if is_code else repr(text) for is_code, text in merged)


@dataclass(slots=True)
class _Context:
    """Where generated code runs: the current item's variable, position, prefixes, cached walks."""

    item: str
    position: str
    target: _Prefix
    source: _Prefix
    walks: dict[tuple[str | int, ...], str] = field(default_factory=dict)

    def nested(self) -> _Context:
        # Variables assigned in a nested block may not exist after it: the copy keeps them local.
        return _Context(self.item, self.position, self.target, self.source, dict(self.walks))

    def inside(self, name: str) -> _Context:
        return _Context(self.item, self.position, self.target.plus(f"{name}."), self.source, self.walks)


@dataclass(frozen=True, slots=True)
class GeneratedMapping:
    """The generated function of one mapping and its source text."""

    produce: ProduceFunction
    source: str


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "_Run": Run,
            "_to_text": co.to_text,
            "_CoercionError": co.CoercionError,
            "_UNREAD": _Unread,
            "_Reported": _Reported,
            "_child_elements": child_elements,
            "_child_index": child_index,
            "_first_attribute": first_attribute,
        }
        self.counter = 0

    def line(self, depth: int, text: str) -> None:
        self.lines.append(_INDENT * depth + text)

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def ref(self, obj: Any, stem: str = "_k") -> str:
        name = self.fresh(stem)
        self.namespace[name] = obj
        return name

    def as_text(self, depth: int, target: str, value: str) -> None:
        """``target = value`` as text (JSON numbers and booleans spelled out, as ``to_text`` does)."""
        self.line(depth, f"{target} = {value} if type({value}) is str else _to_text({value})")

    def literal(self, value: Any) -> str:
        if value is None or type(value) in (str, int, bool):
            return repr(value)
        return self.ref(value)

    # -- nodes ---------------------------------------------------------------------------------

    def node(self, node: CompiledNode, ctx: _Context, depth: int) -> str:
        if isinstance(node, CompiledValue):
            return self.value(node, ctx, depth)
        if isinstance(node, CompiledFirstOf):
            return self.first_of(node, ctx, depth)
        if isinstance(node, CompiledList):
            return self.list(node, ctx, depth)
        if isinstance(node, CompiledObject):
            return self.object(node, ctx, depth)
        raise FatalError(f"no code generation for node kind {type(node).__name__} (add it to the generator)")

    def guarded(
        self,
        when: CompiledCondition | None,
        target: str,
        ctx: _Context,
        depth: int,
        body: Callable[[_Context, int, str], None],
    ) -> str:
        """Run ``body`` (which assigns the returned variable) only when ``when`` holds."""
        out = self.fresh("v")
        if when is None:
            body(ctx, depth, out)
            return out
        holds = self.condition(when, target, ctx, depth)
        self.line(depth, f"if {holds}:")
        body(ctx.nested(), depth + 1, out)
        self.line(depth, "else:")
        self.line(depth + 1, f"{out} = None")
        return out

    def value(self, node: CompiledValue, ctx: _Context, depth: int) -> str:
        target = ctx.target.plus(node.name).code()

        def body(ctx: _Context, depth: int, out: str) -> None:
            source = ctx.source.plus(node.source).code()
            if isinstance(node.read, ConstRead):
                const = node.read.value
                if const is None or (type(const) is str and not const.strip()):
                    self.absent(node, target, source, depth, out)
                else:
                    self.convert(node, self.literal(const), target, source, ctx, depth, out)
                return
            raw = self.fresh("r")
            fallible = self.read(node.read, raw, target, source, ctx, depth)
            keyword = "if"
            if fallible:
                self.line(depth, f"if {raw} is _UNREAD:")
                self.line(depth + 1, f"{out} = None")
                keyword = "elif"
            self.line(depth, f"{keyword} {raw} is None or (type({raw}) is str and not {raw}.strip()):")
            self.absent(node, target, source, depth + 1, out)
            self.line(depth, "else:")
            self.convert(node, raw, target, source, ctx.nested(), depth + 1, out)

        return self.guarded(node.when, target, ctx, depth, body)

    def absent(self, node: CompiledValue, target: str, source: str, depth: int, out: str) -> None:
        if node.default is not None:
            self.line(depth, f"{out} = {self.literal(node.default)}")
            return
        if node.required:
            self.line(depth, f"fail({target}, {source}, 'required value is missing', None, False)")
        self.line(depth, f"{out} = None")

    def convert(
        self, node: CompiledValue, raw: str, target: str, source: str, ctx: _Context, depth: int, out: str
    ) -> None:
        """Transforms, lookup and conversion of a present value, each failure reported."""
        self.line(depth, "try:")
        value = self.fresh("x")
        self.line(depth + 1, f"{value} = {raw}")
        is_text = self.transform(node, value, depth + 1)
        maybe_none = self.translate(node, value, is_text, raw, target, source, depth + 1)
        if node.convert is not None or node.combine is not None:
            d = depth + 1
            if maybe_none:
                self.line(d, f"if {value} is not None:")
                d += 1
            if node.convert is co.to_text:
                if not is_text:
                    self.as_text(d, value, value)
            elif node.convert is not None:
                self.line(d, f"{value} = {self.ref(node.convert, '_conv')}({value})")
            elif node.combine is not None:
                qualifier = self.value(node.qualifier, ctx, d) if node.qualifier is not None else "None"
                self.line(d, f"{value} = {self.ref(node.combine, '_comb')}({value}, {qualifier})")
        self.line(depth + 1, f"{out} = {value}")
        self.line(depth, "except _CoercionError as exc:")
        self.line(depth + 1, f"fail({target}, {source}, str(exc), {raw}, True)")
        self.line(depth + 1, f"{out} = None")
        self.line(depth, f"except {_READ_ERRORS} as exc:")
        rule = 'f"cannot be converted ({type(exc).__name__}: {exc})"'
        self.line(depth + 1, f"fail({target}, {source}, {rule}, {raw}, True)")
        self.line(depth + 1, f"{out} = None")
        if node.lookup is not None and node.lookup.policy == "error":
            # A code missing from the crosswalk was reported where it was found.
            self.line(depth, "except _Reported:")
            self.line(depth + 1, f"{out} = None")

    def transform(self, node: CompiledValue, value: str, depth: int) -> bool:
        """The text transforms; True when there were any (the value is then text)."""
        if not node.transforms:
            return False
        self.as_text(depth, value, value)
        for name in node.transforms:
            if name in _INLINE_TRANSFORMS:
                self.line(depth, f"{value} = {value}.{_INLINE_TRANSFORMS[name]}()")
            else:
                self.line(depth, f"{value} = {self.ref(co.TRANSFORMS[name], '_t')}({value})")
        return True

    def translate(
        self, node: CompiledValue, value: str, is_text: bool, raw: str, target: str, source: str, depth: int
    ) -> bool:
        """The crosswalk lookup and its missing-key policy; True when the result may be ``None``."""
        lookup = node.lookup
        if lookup is None:
            return False
        code = self.fresh("c")
        if is_text:
            self.line(depth, f"{code} = {value}")
        else:
            self.as_text(depth, code, value)
        self.line(depth, f"{value} = {self.ref(lookup.table.get, '_get')}({code})")
        self.line(depth, f"if {value} is None:")
        if lookup.policy == "pass_through":
            self.line(depth + 1, f"{value} = {code}")
            return False
        if lookup.policy == "default":
            self.line(depth + 1, f"{value} = {self.literal(lookup.default)}")
            return lookup.default is None
        self.line(depth + 1, f"fail({target}, {source}, {lookup.problem!r}, {raw}, True)")
        self.line(depth + 1, "raise _Reported")
        return False

    def first_of(self, node: CompiledFirstOf, ctx: _Context, depth: int) -> str:
        out = self.fresh("v")
        d = depth
        for candidate in node.candidates:
            found = self.value(candidate, ctx, d)
            self.line(d, f"if {found} is not None:")
            self.line(d + 1, f"{out} = {found}")
            self.line(d, "else:")
            d += 1
            ctx = ctx.nested()
        if node.default is None and node.required:
            target = ctx.target.plus(node.name).code()
            sources = " | ".join(c.source for c in node.candidates)
            self.line(d, f"fail({target}, {sources!r}, 'no candidate yields a value', None, False)")
        self.line(d, f"{out} = {self.literal(node.default)}")
        return out

    def object(self, node: CompiledObject, ctx: _Context, depth: int) -> str:
        target = ctx.target.plus(node.name).code()

        def body(ctx: _Context, depth: int, out: str) -> None:
            inner = ctx.inside(node.name) if node.name else ctx
            self.fields(node.children, inner, depth, out)
            self.line(depth, f"{out} = {out} or None")

        return self.guarded(node.when, target, ctx, depth, body)

    def fields(self, children: tuple[CompiledNode, ...], ctx: _Context, depth: int, out: str) -> None:
        built = [(child.name, self.node(child, ctx, depth)) for child in children]
        self.line(depth, f"{out} = {{}}")
        for name, variable in built:
            self.line(depth, f"if {variable} is not None:")
            self.line(depth + 1, f"{out}[{name!r}] = {variable}")

    def list(self, node: CompiledList, ctx: _Context, depth: int) -> str:
        target = ctx.target.plus(node.name).code()

        def body(ctx: _Context, depth: int, out: str) -> None:
            elements = self.fresh("elements")
            self.items(node, elements, ctx, depth)
            source = ctx.source.plus(node.each.text).code()
            self.line(depth, f"if {elements} is None:")
            self.line(depth + 1, f"fail({target}, {source}, 'expected a list', None, False)")
            self.line(depth + 1, f"{out} = None")
            self.line(depth, "else:")
            limit = node.max_items
            self.line(depth + 1, f"if len({elements}) > {limit}:")
            rule = f"f'has {{len({elements})}} elements; at most {limit} are accepted'"
            self.line(depth + 2, f"fail({target}, {source}, {rule}, None, False)")
            self.line(depth + 2, f"{elements} = {elements}[:{limit}]")
            index, element = self.fresh("i"), self.fresh("e")
            self.line(depth + 1, f"{out} = []")
            self.line(depth + 1, f"for {index}, {element} in enumerate({elements}):")
            inner = _Context(
                element,
                f"({index} + 1)",
                ctx.target.plus(f"{node.name}[").plus_index(index).plus("]."),
                # XPath counts positions from 1, JMESPath from 0: error paths say what the path says.
                ctx.source.plus(f"{node.each.text}[")
                .plus_index(index if node.separator == "." else f"{index} + 1")
                .plus(f"]{node.separator}"),
                {key: var for key, var in ctx.walks.items() if key[0] == "root"},
            )
            entry = self.fresh("o")
            self.fields(node.children, inner, depth + 2, entry)
            self.line(depth + 2, f"{out}.append({entry})")

        return self.guarded(node.when, target, ctx, depth, body)

    # -- reading -------------------------------------------------------------------------------

    def condition(self, when: CompiledCondition, target: str, ctx: _Context, depth: int) -> str:
        raw, holds = self.fresh("r"), self.fresh("h")
        source = ctx.source.plus(when.describe).code()
        fallible = self.read(when.read, raw, target, source, ctx, depth, "the condition cannot be read")
        test = self.ref(when.test, "_test")
        if fallible:
            self.line(depth, f"{holds} = {raw} is not _UNREAD and {test}({raw})")
        else:
            self.line(depth, f"{holds} = {test}({raw})")
        return holds

    def read(
        self,
        read: Read,
        raw: str,
        target: str,
        source: str,
        ctx: _Context,
        depth: int,
        failure: str = "cannot be read",
    ) -> bool:
        """Assign the read value to ``raw``; True when the read can fail (``raw`` is then _UNREAD)."""
        if isinstance(read, ConstRead):
            self.line(depth, f"{raw} = {self.literal(read.value)}")
            return False
        if isinstance(read, PositionRead):
            self.line(depth, f"{raw} = {ctx.position}")
            return False
        if isinstance(read, PathRead) and isinstance(read.path, DottedJsonPath):
            base = "root" if read.path.from_root else ctx.item
            self.line(depth, f"{raw} = {self.walk(base, read.path.keys, ctx, depth)}")
            return False
        if isinstance(read, PathRead) and isinstance(read.path, ChildXmlPath):
            self.xml_read(read.path, raw, ctx, depth)
            return False
        if isinstance(read, PathRead):
            call = f"{self.ref(read.path, '_path')}.scalar({ctx.item}, root)"
        else:
            assert isinstance(read, ExprRead)
            env = ", ".join(f"{key!r}: {self.value(binding, ctx, depth)}" for key, binding in read.bindings)
            call = f"{self.ref(read.expression, '_expr')}.evaluate({{{env}}})"
        self.line(depth, "try:")
        self.line(depth + 1, f"{raw} = {call}")
        self.line(depth, f"except {_READ_ERRORS} as exc:")
        self.line(depth + 1, f'fail({target}, {source}, f"{failure}: {{exc}}", None, False)')
        self.line(depth + 1, f"{raw} = _UNREAD")
        return True

    def walk(self, base: str, keys: tuple[str | int, ...], ctx: _Context, depth: int) -> str:
        """The variable holding ``base`` walked along ``keys``; shared prefixes are walked once."""
        current = base
        for n in range(1, len(keys) + 1):
            key = (base, *keys[:n])
            cached = ctx.walks.get(key)
            if cached is None:
                cached = self.fresh("p")
                step = keys[n - 1]
                if type(step) is int:
                    fits = f"type({current}) is list and {-step - 1 if step < 0 else step} < len({current})"
                    self.line(depth, f"{cached} = {current}[{step}] if {fits} else None")
                else:
                    self.line(
                        depth, f"{cached} = {current}.get({step!r}) if type({current}) is dict else None"
                    )
                ctx.walks[key] = cached
            current = cached
        return current

    def xml_elements(self, base: str, tags: tuple[str, ...], ctx: _Context, depth: int) -> str:
        """The variable holding the elements ``tags`` reach from ``base``; shared prefixes once."""
        current = f"({base},)"
        for n in range(1, len(tags) + 1):
            key = (base, "<elements>", *tags[:n])
            cached = ctx.walks.get(key)
            if cached is None:
                cached = self.fresh("x")
                self.line(depth, f"{cached} = _child_elements({current}, {tags[n - 1]!r})")
                ctx.walks[key] = cached
            current = cached
        return current

    def xml_read(self, path: ChildXmlPath, raw: str, ctx: _Context, depth: int) -> None:
        """``raw`` = the value of ``path``; element texts come from a child index built once."""
        if path.attribute is not None:
            if path.tags:
                elements = self.xml_elements(ctx.item, path.tags, ctx, depth)
                self.line(depth, f"{raw} = _first_attribute({elements}, {path.attribute!r})")
            else:
                self.line(depth, f"{raw} = {ctx.item}.get({path.attribute!r})")
            return
        parents, tag = path.tags[:-1], path.tags[-1]
        key = (ctx.item, "<index>", *parents)
        index = ctx.walks.get(key)
        if index is None:
            index = self.fresh("ix")
            self.line(depth, f"{index} = _child_index({self.xml_elements(ctx.item, parents, ctx, depth)})")
            ctx.walks[key] = index
        element = self.fresh("el")
        self.line(depth, f"{element} = {index}.get({tag!r})")
        self.line(depth, f"{raw} = None if {element} is None else {element}.text")

    def items(self, node: CompiledList, elements: str, ctx: _Context, depth: int) -> None:
        path = node.each
        if isinstance(path, ChildXmlPath) and path.attribute is None:
            found = self.xml_elements(ctx.item, path.tags, ctx, depth)
            self.line(depth, f"{elements} = {found}")
            return
        if isinstance(path, DottedJsonPath):
            base = "root" if path.from_root else ctx.item
            found = self.walk(base, path.keys, ctx, depth)
            self.line(
                depth,
                f"{elements} = [] if {found} is None else ({found} if isinstance({found}, list) else None)",
            )
        else:
            self.line(depth, f"{elements} = {self.ref(path, '_path')}.items({ctx.item}, root)")


def generate(root: CompiledObject, label: str) -> GeneratedMapping:
    """Generate and compile the function that maps one decoded document with ``root``."""
    writer = _Writer()
    ctx = _Context("root", "1", _Prefix(), _Prefix())
    out = writer.object(root, ctx, 1)
    lines = [
        "def produce(root):",
        f"{_INDENT}run = _Run()",
        f"{_INDENT}fail = run.fail",
        *writer.lines,
        f"{_INDENT}return ({out} or {{}}), run.errors",
    ]
    source = "\n".join(lines) + "\n"
    filename = f"<mapping {label}>"
    # Registered so that a traceback through the generated code shows its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), writer.namespace)  # our own template: see the docstring
    return GeneratedMapping(writer.namespace["produce"], source)


def node_source(node: CompiledNode) -> str:
    """The code generated for one node alone, read from the document root (for ``explain``).

    Inside the whole mapping's function the same lines run with the enclosing group's element and
    with path prefixes other fields share; the result is assigned to the variable named last.
    """
    writer = _Writer()
    out = writer.node(node, _Context("root", "1", _Prefix(), _Prefix()), 0)
    return "\n".join([*writer.lines, f"# the field's value is {out}"]) + "\n"
