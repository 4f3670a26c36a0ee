"""YAML parsed into plain values that remember their line numbers."""

from __future__ import annotations

import re
from typing import Any, Final

import yaml

from responder.errors import Problem


class LMap(dict[str, Any]):
    """A mapping that remembers the line of itself and of each of its keys."""

    line: int
    key_lines: dict[str, int]


class LSeq(list[Any]):
    """A sequence that remembers the line of itself and of each item."""

    line: int
    item_lines: list[int]


class RulesLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars: only true/false are booleans, so ``on:`` stays a
    string key; integers are plain decimal (or 0x/0o), so ``digits: 007`` stays the string
    ``"007"`` instead of YAML 1.1's octal 7, and ``every: 1:30`` is not sexagesimal 90."""


_BOOL, _INT, _FLOAT, _TIMESTAMP = (
    f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp")
)

# No implicit timestamps either (YAML 1.2 core has none): ``2024-02-30`` stays a string that
# the rules language validates, instead of crashing the constructor with a ValueError.
RulesLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _firsts in (
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_INT, r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+|0o[0-7]+)$", "-+0123456789"),
    (
        _FLOAT,
        r"^(?:[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
):
    for _first in _firsts:
        RulesLoader.yaml_implicit_resolvers.setdefault(_first, []).insert(
            0, (_tag, re.compile(_regexp))
        )


_FastParser: Any
try:
    from yaml.cyaml import CParser as _FastParser  # type: ignore[attr-defined]
except ImportError:  # PyYAML built without libyaml
    _FastParser = None


def _fast_loader(text: str) -> Any:
    """RulesLoader's resolvers on libyaml's parser: the same nodes, some ten times faster.
    It stops at 1,000 levels of nesting."""
    loader = _FastLoader(text)
    yaml.constructor.SafeConstructor.__init__(loader)
    yaml.resolver.Resolver.__init__(loader)
    return loader


_FastLoader: Any = (
    type(
        "_FastLoader",
        (_FastParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver),
        {"yaml_implicit_resolvers": RulesLoader.yaml_implicit_resolvers},
    )
    if _FastParser is not None
    else None
)


def line_of(value: Any, default: int) -> int:
    """The line ``value`` starts on, when it is a located container."""
    return int(getattr(value, "line", default))


# Every limit has a number: aliases are expanded into copies (so every value keeps its own
# place), which a "billion laughs" document would turn into a bomb; and a deeply nested
# document would exhaust the recursion of everything that walks it.
MAX_NODES: Final = 1_000_000
MAX_DEPTH: Final = 100


class _TooBig(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load(text: str, file: str) -> tuple[Any, list[Problem]]:
    """Parse one YAML document into located values; syntax errors become problems."""
    if _FastLoader is not None and not _UNUSUAL.search(text):
        value, problems = _load(_fast_loader(text), file)
        if not problems:
            return value, problems
        # Problems are worded by the pure-Python parser, whatever libyaml says.
    try:
        loader = RulesLoader(text)
    except yaml.reader.ReaderError as exc:
        # The reader refuses a character YAML does not allow (NUL, ESC, ...) before any
        # parsing, so the error is raised here, not while loading.
        return None, [_unreadable(text, file, exc)]
    return _load(loader, file)


def _unreadable(text: str, file: str, exc: yaml.reader.ReaderError) -> Problem:
    """A character YAML refuses, as a problem on its line, the character escaped."""
    position = max(0, min(int(exc.position), len(text)))
    line = text.count("\n", 0, position) + 1
    shown = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return Problem(
        file,
        line,
        f"character '{shown.encode('unicode_escape').decode('ascii')}' is not allowed in "
        'YAML (write it as an escape inside a double-quoted string, e.g. "\\x1b")',
    )


def _load(loader: Any, file: str) -> tuple[Any, list[Problem]]:
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is None:
            return None, problems
        return _Converter(loader, file, problems).convert(node, 0), problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = f"YAML syntax error: {exc.problem or exc}"
        if exc.problem and exc.context and exc.context_mark is not None:
            # "while scanning a quoted scalar on line 5, found unexpected end of stream"
            where = f"{exc.context} on line {exc.context_mark.line + 1}"
            message = f"YAML syntax error: {where}, {exc.problem}"
        problems.append(Problem(file, line, message))
        return None, problems
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 1, f"YAML error: {exc}"))
        return None, problems
    except _TooBig as exc:
        problems.append(Problem(file, exc.line, exc.message))
        return None, problems
    except RecursionError:  # the composer itself recursing on absurd nesting
        problems.append(Problem(file, 1, f"nested more than {MAX_DEPTH} levels deep"))
        return None, problems
    finally:
        loader.dispose()


_STR: Final = "tag:yaml.org,2002:str"
# Where libyaml and PyYAML part ways (libyaml takes a tab after a value, a byte order mark
# inside the text...): texts with any of these characters are read by PyYAML alone.
_UNUSUAL: Final = re.compile(
    "[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]"
)


class _Converter:
    """Nodes to located values, one document; aliases become copies, within limits."""

    def __init__(self, loader: Any, file: str, problems: list[Problem]) -> None:
        self.loader = loader
        self.file = file
        self.problems = problems
        self.count = 0
        self.active: set[int] = set()  # nodes being converted: an alias to one is a cycle
        self.own: dict[int, set[int]] = {}  # mapping node -> its own (not merged) key nodes

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def convert(self, node: yaml.Node, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig(line, f"more than {MAX_NODES} values (aliases expanded)")
        if depth > MAX_DEPTH:
            raise _TooBig(line, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:  # what SafeConstructor makes of it, without its overhead
                return node.value
            try:
                return self.loader.construct_object(node, deep=True)
            except (ValueError, TypeError, OverflowError) as exc:  # e.g. an explicit !!int abc
                self.problem(line, f"cannot read value {node.value!r}: {exc}")
                return None
        if id(node) in self.active:
            self.problem(line, "an alias refers to the value that contains it")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, line, depth)
            seq = LSeq()
            seq.line = line
            seq.item_lines = []
            for item in node.value:
                seq.append(self.convert(item, depth + 1))
                seq.item_lines.append(item.start_mark.line + 1)
            return seq
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, line: int, depth: int) -> LMap:
        if id(node) not in self.own:  # an aliased mapping is flattened only once
            merge = "tag:yaml.org,2002:merge"
            self.own[id(node)] = {id(k) for k, _ in node.value if k.tag != merge}
            self.loader.flatten_mapping(node)  # resolves merge keys (<<): merged pairs first
        own = self.own[id(node)]
        out = LMap()
        out.line = line
        out.key_lines = {}
        merged: set[str] = set()  # keys that came from a merge and may still be overridden
        for key_node, value_node in node.value:
            key = self.convert(key_node, depth + 1)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                self.problem(key_line, f"key {key!r} must be a string")
                continue
            if id(key_node) not in own:
                # flatten_mapping orders merged pairs so that the last one wins, as in PyYAML
                merged.add(key)
            elif key in merged:  # the mapping's own key overrides a merged one
                merged.discard(key)
                del out[key]
            elif key in out:
                first = out.key_lines[key]
                self.problem(key_line, f"duplicate key {key!r} (first on line {first})")
                continue
            out[key] = self.convert(value_node, depth + 1)
            out.key_lines[key] = key_line
        return out
