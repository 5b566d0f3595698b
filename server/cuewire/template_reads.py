"""Which traits and custom events' props a prompt template reads, found in its syntax tree.

A batch decided ahead renders its prompt before the store call from the facts the process
keeps (fold.py): those must hold what templates read of the open-ended parts of the context
(``visitor.traits``, ``session.last``; the rest is in the fields every rule set reads,
rules/reads.py). A template that names them (``visitor.traits.name``,
``session.last.get("add_to_cart")``, ``visitor.traits["plan"]``) adds those fields alone; any
other use (a loop over them, ``{% set last = session.last %}``, the whole ``visitor``) reads
them all, by prefix: more to return per batch, never a wrong prompt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jinja2 import nodes

# context name -> the key of its open-ended part (FactView.template_context)
OPEN_PARTS = {"visitor": "traits", "session": "last"}


@dataclass(frozen=True)
class TemplateReads:
    """The trait names and custom event names whose props templates read; None: all."""

    traits: frozenset[str] | None = frozenset()
    last: frozenset[str] | None = frozenset()

    def __or__(self, other: TemplateReads) -> TemplateReads:
        return TemplateReads(_union(self.traits, other.traits), _union(self.last, other.last))


ALL = TemplateReads(None, None)  # what a template nobody looked at may read


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


def reads_of(ast: nodes.Template) -> TemplateReads:
    """What the template ``ast`` reads of ``visitor.traits`` and ``session.last``."""
    parents = parents_of(ast)
    found: dict[str, set[str] | None] = {"traits": set(), "last": set()}
    for name in ast.find_all(nodes.Name):
        if name.ctx != "load" or name.name not in OPEN_PARTS:
            continue
        part = OPEN_PARTS[name.name]
        key, use = _key(name, parents)
        if key is None:  # the whole visitor or session: every part of it
            found[part] = None
        elif key == part and found[part] is not None:
            named, _ = _key(use, parents)
            if named is None:
                found[part] = None
            else:
                found[part].add(named)  # type: ignore[union-attr]
    return TemplateReads(*(_frozen(found[part]) for part in ("traits", "last")))


def parents_of(ast: nodes.Template) -> dict[int, nodes.Node]:
    """Each node's parent in ``ast``, by the node's id."""
    parents: dict[int, nodes.Node] = {}
    for node in ast.find_all(nodes.Node):
        for child in node.iter_child_nodes():
            parents[id(child)] = node
    return parents


def read_at(node: nodes.Node, parents: dict[int, nodes.Node]) -> tuple[str, nodes.Node] | None:
    """The constant key ``node`` is read at and the node of that read, or None (``_key``)."""
    key, use = _key(node, parents)
    return None if key is None else (key, use)


def _frozen(names: set[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


def _key(node: nodes.Node, parents: dict[int, nodes.Node]) -> tuple[str | None, nodes.Node]:
    """The constant key ``node`` is read at (``node.key``, ``node["key"]``,
    ``node.get("key", ...)``) and the node of that read; None when it is used otherwise."""
    parent = parents.get(id(node))
    if isinstance(parent, nodes.Getattr) and parent.node is node:
        if parent.attr != "get":
            # Jinja looks an attribute up on the dict first: .items, .keys, ... read it all
            return (None, node) if hasattr(dict, parent.attr) else (parent.attr, parent)
        call = parents.get(id(parent))
        if isinstance(call, nodes.Call) and call.node is parent and call.args:
            arg = call.args[0]
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                return arg.value, call
        return None, parent
    if isinstance(parent, nodes.Getitem) and parent.node is node:
        arg = parent.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return arg.value, parent
    return None, node


def union(reads: Iterable[TemplateReads]) -> TemplateReads:
    """What a set of templates reads together."""
    out = TemplateReads()
    for r in reads:
        out = out | r
    return out
