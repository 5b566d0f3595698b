"""YAML sources with positions: map a validation error's field path back to file:line:col."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from .errors import Problem

_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT = re.compile(r" - at `(\$[^`]*)`$")
_REGEX = re.compile(r"Expected `str` matching regex (.+)")
# ``key: value`` where the unquoted value itself holds ": " (YAML reads a second mapping)
_COLON_IN_VALUE = re.compile(r"^\s*(?:-\s+)?([\w.-]+):\s+([^\s\"'|>{\[#&*!][^#]*?:(?:\s|$).*)$")


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

    def validation_problem(
        self,
        exc: msgspec.ValidationError,
        prefix: list[str | int] | None = None,
        hints: Mapping[str, str] | None = None,
    ) -> Problem:
        """A msgspec error as a problem at the offending field (``prefix``: where the value
        that was converted sits in the file); ``hints``: what a value of a pattern looks like,
        said instead of the pattern itself."""
        message = str(exc)
        at = _AT.search(message)
        parts = [*(prefix or []), *(parse_path(at.group(1)) if at else [])]
        text = message[: at.start()] if at else message
        regex = _REGEX.fullmatch(text)
        hint = next((h for p, h in (hints or {}).items() if regex and repr(p) == regex[1]), None)
        text = f"expected {hint}" if hint else text
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


def yaml_problem(
    path: Path, text: str, exc: yaml.YAMLError, what: str = "invalid YAML", first_line: int = 1
) -> Problem:
    """Any YAML error as a Problem at its line and column (``text`` starts on the file's line
    ``first_line``). Syntax errors (``MarkedYAMLError``) carry a mark, and the commonest slip,
    an unquoted value that holds ``": "``, says what to do; the reader's ``ReaderError`` (a
    control character, say) carries an offset instead."""
    if isinstance(exc, yaml.reader.ReaderError):
        offset = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, offset) + first_line
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        char = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
        return Problem(path, line, col, f"{what}: {char} not allowed ({exc.reason}); remove it")
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(path, first_line, 1, f"{what}: {exc}")
    mark = exc.problem_mark
    if mark is None:
        return Problem(path, first_line, 1, f"{what}: {exc.problem}")
    line, col = mark.line + first_line, mark.column + 1
    message = f"{what}: {exc.problem}"
    lines = text.splitlines()
    source = lines[mark.line] if mark.line < len(lines) else ""
    slip = _COLON_IN_VALUE.match(source)
    if slip:
        key, value = slip.group(1), slip.group(2).rstrip()
        quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        col = source.index(value) + 1
        message = (
            f'{what}: the value of `{key}` contains ": ", which YAML reads as another key; '
            f"quote the value: {key}: {quoted}"
        )
    return Problem(path, line, col, message)
