"""The jinja2 sandbox with numbers on it: output size, value size, loop steps, render time.

``ImmutableSandboxedEnvironment`` already refuses private attributes and mutation. This
subclass also bounds what a rule author's template can cost: every operator, method and
filter that can make a value much larger than its inputs is checked *before* it runs, every
loop iteration and call counts against a budget, and rendering stops at the output cap.
Each limit is a number here and in docs/security.md.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from string import Formatter
from typing import Any, Final

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Rendered text longer than this is an error, not an SMS storm.
MAX_OUTPUT_CHARS: Final = 10_000
# No string or list a template builds (``*``, ``+``, ``%``, ``replace``, ``center``, ...)
# may be longer than this.
MAX_VALUE_CHARS: Final = 10_000
# Integers a template computes stay below 2**4096 (about 1,233 digits).
MAX_INT_BITS: Final = 4096
# ``range()`` yields at most this many numbers.
MAX_RANGE: Final = 10_000
# Loop iterations plus calls (functions, methods, macros) in one render.
MAX_RENDER_STEPS: Final = 100_000
# Wall-clock time one render may take.
MAX_RENDER_SECONDS: Final = 0.5

_GUARD = "responder_loop_guard"
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")


@dataclass(slots=True)
class Budget:
    """What one render may still spend."""

    steps: int
    deadline: float
    max_steps: int
    max_seconds: float

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise SecurityError(
                f"template took more than {self.max_steps} steps (loop iterations and calls)"
            )
        if time.monotonic() > self.deadline:
            raise SecurityError(f"template took longer than {self.max_seconds} s to render")


_BUDGET: ContextVar[Budget | None] = ContextVar("responder_render_budget", default=None)


def _refuse(what: str, size: int) -> SecurityError:
    return SecurityError(f"{what} would make {size} items (limit {MAX_VALUE_CHARS})")


def _check_size(what: str, size: int) -> None:
    if size > MAX_VALUE_CHARS:
        raise _refuse(what, size)


def _check_width(what: str, width: Any) -> None:
    if isinstance(width, int) and width > MAX_VALUE_CHARS:
        raise _refuse(what, width)


def _check_printf(fmt: str, values: Any) -> None:
    """``'%09999999d' % x`` and ``'%*d' % (10**9, x)`` are refused before they allocate."""
    numbers = values if isinstance(values, tuple) else (values,)
    for match in _PRINTF_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*":
                for value in numbers:
                    _check_width("'%' formatting", value)
            elif part is not None:
                _check_width("'%' formatting", int(part))


def _check_format(fmt: str, args: Iterable[Any]) -> None:
    """``'{:>999999999}'.format(x)`` and nested widths (``'{:{}}'``) are refused first."""
    for _, _, spec, _ in Formatter().parse(fmt):
        for number in _NUMBER.findall(spec or ""):
            _check_width("str.format", int(number))
        if spec and "{" in spec:
            for value in args:
                _check_width("str.format", value)


def _replaced_size(s: str, old: str, new: str, count: int | None) -> int:
    found = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(s) + found * (len(new) - len(old))


def _check_str_method(name: str, s: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_width(f"str.{name}", args[0])
    elif name == "expandtabs":
        size = int(args[0] if args else kwargs.get("tabsize", 8))
        _check_size("str.expandtabs", len(s) + s.count("\t") * size)
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count")
        _check_size("str.replace", _replaced_size(s, str(args[0]), str(args[1]), count))
    elif name == "join" and args and isinstance(args[0], list | tuple | str):
        _check_size("str.join", len(s) * max(len(args[0]) - 1, 0))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sequence = (str, list, tuple)
    if operator == "*":
        if isinstance(left, sequence) and isinstance(right, int):
            _check_size("'*'", len(left) * right)
        elif isinstance(right, sequence) and isinstance(left, int):
            _check_size("'*'", len(right) * left)
        elif isinstance(left, int) and isinstance(right, int):
            _check_bits("'*'", left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_bits("'**'", left.bit_length() * right)
    elif operator == "+":
        if isinstance(left, sequence) and isinstance(right, sequence):
            _check_size("'+'", len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        _check_printf(left, right)


def _check_bits(what: str, bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise SecurityError(f"{what} would make a {bits}-bit number (limit {MAX_INT_BITS})")


def bounded_range(*args: int) -> range:
    """``range()`` with at most MAX_RANGE items."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range of {len(numbers)} items (limit {MAX_RANGE})")
    return numbers


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _center_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _check_width("center", _arg(args, kwargs, 0, "width", 80))


def _indent_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    width = _arg(args, kwargs, 0, "width", 4)
    pad = len(width) if isinstance(width, str) else int(width)
    text = str(value)
    _check_size("indent", len(text) + (text.count("\n") + 1) * pad)


def _format_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _check_printf(str(value), tuple(args) or tuple(kwargs.values()))


def _replace_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    old = str(_arg(args, kwargs, 0, "old", ""))
    new = str(_arg(args, kwargs, 1, "new", ""))
    count = _arg(args, kwargs, 2, "count", None)
    _check_size("replace", _replaced_size(str(value), old, new, count))


def _slice_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _check_width("slice", _arg(args, kwargs, 0, "slices", 1))


def _join_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if hasattr(value, "__len__"):
        separator = str(_arg(args, kwargs, 0, "d", ""))
        _check_size("join", len(separator) * max(len(value) - 1, 0))


# Filters that can make a value much larger than their input, with the check each gets.
_FILTER_CHECKS: Final[dict[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any]], None]]] = {
    "center": _center_filter,
    "indent": _indent_filter,
    "format": _format_filter,
    "replace": _replace_filter,
    "slice": _slice_filter,
    "join": _join_filter,
}


def _guard_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    check = _FILTER_CHECKS[name]
    # jinja passes its context first to filters marked with ``jinja_pass_arg``.
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(f)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            check(args[skip], args[skip + 1 :], kwargs)
        return f(*args, **kwargs)

    return guarded


def _guard_loops(node: nodes.Node) -> None:
    """Route every ``{% for %}`` through the environment's loop guard (one step an item)."""
    for loop in node.find_all(nodes.For):
        loop.iter = nodes.Call(
            nodes.EnvironmentAttribute(_GUARD), [loop.iter], [], None, None, lineno=loop.lineno
        )


class Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox rule templates run in; see the module docstring for what it adds."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(
        self,
        *,
        max_steps: int = MAX_RENDER_STEPS,
        max_seconds: float = MAX_RENDER_SECONDS,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.globals["range"] = bounded_range
        self.globals.pop("lipsum", None)  # lorem ipsum generator: no use in an SMS, only cost
        for name in _FILTER_CHECKS:
            self.filters[name] = _guard_filter(name, self.filters[name])

    # -- budget ------------------------------------------------------------------------

    def budget(self) -> Budget:
        """A fresh budget for one render."""
        return Budget(
            self.max_steps, time.monotonic() + self.max_seconds, self.max_steps, self.max_seconds
        )

    def run(self, budget: Budget, func: Callable[[], Any]) -> Any:
        """Call ``func`` with ``budget`` in force."""
        token = _BUDGET.set(budget)
        try:
            return func()
        finally:
            _BUDGET.reset(token)

    def spend(self) -> None:
        budget = _BUDGET.get()
        if budget is not None:
            budget.spend()

    def responder_loop_guard(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.spend()
            yield item

    # -- hooks of the jinja2 sandbox ---------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _guard_loops(tree)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.spend()
        bound = getattr(__obj, "__self__", None)
        if isinstance(bound, str):
            _check_str_method(getattr(__obj, "__name__", ""), bound, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            values = (
                list(args[0].values())
                if is_map and args and hasattr(args[0], "values")
                else [
                    *args,
                    *kwargs.values(),
                ]
            )
            _check_format(fmt, values)
            return wrapped(*args, **kwargs)

        return checked
