"""Reading a rules file: YAML in, a validated model out, or one error naming file, line, reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from omnirouter.errors import ConfigurationError
from omnirouter.pipeline.routing.rules import DEFAULT_RULES, RoutingRules

Location = tuple[str | int, ...]
_DOTTED = re.compile(r"^[a-z_]+(\.[a-z0-9_]+)*$")


class RulesFileError(ConfigurationError):
    """A rules file that cannot be used; the message is ``FILE:LINE: where: why``."""


def _scalar(node: yaml.Node) -> Any:
    # Constructed from the node itself, so a constructor error (an unknown tag) carries the
    # node's own line.
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _construct(node: yaml.Node, path: Location, lines: dict[Location, int]) -> Any:
    # Build plain data from the node graph, remembering the line (1-based) of every value so a
    # validation error can point at the line that causes it.
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _line_of(loc: Location, lines: dict[Location, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def parse_rules(text: str, *, source: str = "<rules>") -> RoutingRules:
    """Validate rules given as YAML text.

    Raises:
        RulesFileError: the YAML is malformed or the rules are invalid.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            raise RulesFileError(f"{source}:1: the file is empty")
        lines: dict[Location, int] = {}
        data = _construct(root, (), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise RulesFileError(f"{source}:{line}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError carries no mark)
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        raise RulesFileError(f"{source}:{line}: not valid YAML: {exc}") from None
    try:
        return RoutingRules.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc: Location = tuple(
            p for p in first["loc"] if not isinstance(p, str) or not p.startswith("function-")
        )
        message = first["msg"].removeprefix("Value error, ")
        path, sep, rest = message.partition(": ")
        if sep and _DOTTED.match(path):
            # A cross-reference check names the offending path itself (see RoutingRules).
            loc = (*loc, *(int(p) if p.isdigit() else p for p in path.split(".")))
            message = rest
        where = ".".join(str(p) for p in loc) or "rules"
        # One problem at a time: follow-on errors (a list left too short by the bad item)
        # would only mislead.
        raise RulesFileError(f"{source}:{_line_of(loc, lines)}: {where}: {message}") from None


def load_rules(path: Path) -> RoutingRules:
    """Read and validate a rules file.

    Raises:
        RulesFileError: the file is missing, malformed or invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise RulesFileError(f"{path}:{line}: the rules file is not UTF-8 text") from None
    return parse_rules(text, source=str(path))


def rules_from_settings(rules_file: Path | None) -> RoutingRules:
    """The rules a process runs with: the file when configured, else the built-in default.

    Raises:
        RulesFileError: the configured file is missing, malformed or invalid.
    """
    if rules_file is None:
        return DEFAULT_RULES
    return load_rules(rules_file)
