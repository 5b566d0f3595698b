"""Rendered prompts remembered by what their template reads.

A template's output is a function of the context values it reads (rendering is pure, but for
the filters that read the clock or draw at random). Its inputs are found in its syntax tree
once, at load (``inputs_of``): every context name it loads, followed as far as constant keys
go (``params.get("title")`` reads ``params.title``, ``session.last.items()`` the whole of
``session.last``, ``{{ visitor }}`` all of it). The values at those paths, with their types
(``1``, ``1.0`` and ``True`` render differently) and the order of their keys, are the key of
the text rendered; a template that uses an impure filter has no inputs and is rendered
every time.

Under the latency scenario's load, rendering the prompts made ahead was 8% of the server's
profile samples (bench/results/20261204-131448-quick-profile-latency.txt), and most firings
of one rule render the same text: its params, and the few facts its template names.

Bounded: at most ``MAX_ENTRIES`` texts of at most ``MAX_HTML`` characters, keyed by at most
``MAX_KEY_CHARS`` characters of values (values come from the browser: a larger key is
rendered, not kept); the oldest goes first. A reload loads a new catalog, and a new cache.
"""

from __future__ import annotations

from typing import Any

from jinja2 import nodes

from .template_reads import parents_of, read_at

Path = tuple[str, ...]
Inputs = tuple[Path, ...]

# The filters whose output is not a function of their arguments: the server's clock (when
# no ``now_ms`` is passed), Jinja's ``random``. A template that uses one is never cached.
IMPURE_FILTERS = frozenset({"relative_time", "seconds_until", "random"})
# The names besides the context's and the template's own that a template may use and stay
# pure: Jinja's pure globals and what its runtime provides. Any other (Jinja's ``lipsum``
# draws at random) leaves the template uncached.
PURE_NAMES = frozenset(
    {"range", "dict", "cycler", "joiner", "namespace", "loop", "caller", "varargs", "kwargs"}
)
MAX_ENTRIES = 512
MAX_HTML = 16 * 1024  # the shipped templates render 3 to 8 KB
MAX_KEY_CHARS = 2048
_MISSING = object()


def inputs_of(ast: nodes.Template, roots: tuple[str, ...]) -> Inputs | None:
    """The context paths whose values decide what the template ``ast`` renders (``roots``:
    the names the context provides); None when more does (an impure filter or global)."""
    if any(f.name in IMPURE_FILTERS for f in ast.find_all(nodes.Filter)):
        return None
    parents = parents_of(ast)
    own = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    found: dict[Path, None] = {}
    for name in ast.find_all(nodes.Name):
        if name.ctx != "load":
            continue
        if name.name not in roots:
            if name.name not in own and name.name not in PURE_NAMES:
                return None
            continue
        path: list[str] = [name.name]
        node: nodes.Node = name
        while (step := read_at(node, parents)) is not None:
            key, node = step
            path.append(key)
        found[tuple(path)] = None
    return tuple(sorted(found))


class RenderCache:
    """Texts by (template, the values of its inputs)."""

    def __init__(self) -> None:
        self._texts: dict[tuple[Any, ...], str] = {}

    def key(self, name: str, inputs: Inputs, context: dict[str, Any]) -> tuple[Any, ...] | None:
        """The key of ``name`` rendered with ``context``; None when it is not to be kept."""
        budget = [MAX_KEY_CHARS]
        values: list[Any] = [name]
        for path in inputs:
            depth, value = _at(context, path)
            frozen = _frozen(value, budget)
            if budget[0] < 0:
                return None
            values += (depth, frozen)
        return tuple(values)

    def get(self, key: tuple[Any, ...]) -> str | None:
        return self._texts.get(key)

    def keep(self, key: tuple[Any, ...], text: str) -> None:
        if len(text) > MAX_HTML:
            return
        texts = self._texts
        if len(texts) >= MAX_ENTRIES:
            del texts[next(iter(texts))]
        texts[key] = text

    def __len__(self) -> int:
        return len(self._texts)


def _at(context: dict[str, Any], path: Path) -> tuple[int, Any]:
    """How far ``path`` goes through dicts in ``context``, and the value there (past a value
    of another kind, the whole of that value decides; the depth tells ``{"name": 0}`` read
    at ``name`` from a plain ``0``)."""
    value: Any = context.get(path[0], _MISSING)
    for depth, key in enumerate(path[1:], 1):
        if type(value) is not dict:
            return depth, value
        value = value.get(key, _MISSING)
    return len(path), value


def _frozen(value: Any, budget: list[int]) -> Any:
    """``value`` as a hashable key part that tells apart what renders apart; ``budget``, the
    characters still allowed, goes negative when the value is too large to key."""
    kind = type(value)
    if kind is str:
        budget[0] -= len(value)
        return value
    if kind is dict:
        budget[0] -= len(value)
        return (dict, tuple((k, _frozen(v, budget)) for k, v in value.items()))
    if kind is list or kind is tuple:
        budget[0] -= len(value)
        return (kind, tuple(_frozen(v, budget) for v in value))
    if value is _MISSING or kind in (int, float, bool, type(None)):
        budget[0] -= 8
        return (kind, value)
    budget[0] = -1  # not JSON data: not kept
    return None
