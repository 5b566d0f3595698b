"""YAML sources with positions: map a validation error's field path back to file:line:col."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from .errors import Problem

_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT = re.compile(r" - at `(\$[^`]*)`$")


class YamlDoc:
    """A parsed YAML file that remembers where every node came from."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        loader = yaml.SafeLoader(text)
        try:
            self.root: yaml.Node | None = loader.get_single_node()
            self.data: Any = loader.construct_document(self.root) if self.root else None
        finally:
            loader.dispose()

    def locate(self, parts: list[str | int], key: str | None = None) -> tuple[int, int]:
        """1-based line and column of the node at ``parts`` (or of its mapping ``key``)."""
        node = self.root
        if node is None:
            return 1, 1
        for part in parts:
            child = _child(node, part)
            if child is None:
                break
            node = child
        else:
            if key is not None and isinstance(node, yaml.MappingNode):
                node = next((k for k, _ in node.value if k.value == key), node)
        return node.start_mark.line + 1, node.start_mark.column + 1

    def problem(self, parts: list[str | int], message: str, key: str | None = None) -> Problem:
        line, col = self.locate(parts, key)
        return Problem(self.path, line, col, message)

    def validation_problem(self, exc: msgspec.ValidationError) -> Problem:
        """A msgspec error as a problem at the offending field."""
        message = str(exc)
        at = _AT.search(message)
        parts = parse_path(at.group(1)) if at else []
        text = message[: at.start()] if at else message
        unknown = _UNKNOWN.search(text)
        where = ".".join(str(p) for p in parts)
        return self.problem(
            parts, f"{where}: {text}" if where else text, unknown.group(1) if unknown else None
        )


def parse_path(path: str) -> list[str | int]:
    """``$.rules[0].trigger`` -> ``["rules", 0, "trigger"]``."""
    return [int(idx) if idx else name for name, idx in _TOKEN.findall(path)]


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        return node.value[part] if part < len(node.value) else None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == part:
                found: yaml.Node = value_node
                return found
    return None


def read_yaml(path: Path) -> YamlDoc | Problem:
    """Parse ``path``; a syntax error comes back as a Problem with its position."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Problem(path, 1, 1, f"cannot read: {exc}")
    try:
        return YamlDoc(path, text)
    except yaml.YAMLError as exc:
        return yaml_problem(path, text, exc)


def yaml_problem(path: Path, text: str, exc: yaml.YAMLError, first_line: int = 1) -> Problem:
    """Any YAML error as a Problem at its position; ``first_line`` is the file line where
    ``text`` starts. Besides syntax errors (``MarkedYAMLError``, with a mark) the reader
    raises ``ReaderError`` (a control character, say), which has an offset instead."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Problem(path, line + first_line - 1, col, f"invalid YAML: {exc.problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        offset = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
        message = f"invalid YAML: {what} not allowed ({exc.reason}); remove it"
        return Problem(path, line + first_line - 1, col, message)
    return Problem(path, first_line, 1, f"invalid YAML: {exc}")
