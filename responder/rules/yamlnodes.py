"""YAML parsed into plain values that remember their line numbers."""

from __future__ import annotations

import re
from typing import Any

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
    """SafeLoader with YAML 1.2 booleans: only true/false, so ``on:`` stays a string key."""


RulesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    RulesLoader.yaml_implicit_resolvers.setdefault(_first, []).insert(
        0, ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )


def line_of(value: Any, default: int) -> int:
    """The line ``value`` starts on, when it is a located container."""
    return int(getattr(value, "line", default))


def load(text: str, file: str) -> tuple[Any, list[Problem]]:
    """Parse one YAML document into located values; syntax errors become problems."""
    problems: list[Problem] = []
    loader = RulesLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, problems
        return _convert(node, loader, file, problems), problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.append(Problem(file, line, f"YAML syntax error: {exc.problem or exc}"))
        return None, problems
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 1, f"YAML error: {exc}"))
        return None, problems
    finally:
        loader.dispose()


def _convert(node: yaml.Node, loader: RulesLoader, file: str, problems: list[Problem]) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out = LMap()
        out.line = line
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, loader, file, problems)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                problems.append(Problem(file, key_line, f"key {key!r} must be a string"))
                continue
            if key in out:
                problems.append(
                    Problem(
                        file,
                        key_line,
                        f"duplicate key {key!r} (first on line {out.key_lines[key]})",
                    )
                )
                continue
            out[key] = _convert(value_node, loader, file, problems)
            out.key_lines[key] = key_line
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LSeq()
        seq.line = line
        seq.item_lines = []
        for item in node.value:
            seq.append(_convert(item, loader, file, problems))
            seq.item_lines.append(item.start_mark.line + 1)
        return seq
    return loader.construct_object(node, deep=True)
