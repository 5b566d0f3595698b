"""The sandbox every template renders in: Jinja's immutable sandbox (no private or internal
attributes, no method that changes data), with its verdicts on the plain data templates see
remembered.

A template reads JSON values (dicts, lists, strings, numbers) and calls their read methods
(``params.get("code")``). For those types Jinja's verdict on an attribute depends on the
type and the name alone (``is_internal_attribute`` and ``modifies_known_mutable`` test the
type and the name), so it is taken once per pair instead of through a dozen ``isinstance``
checks against abstract classes on every access: a third of a prompt's render. Anything
else (a callable, a class, a frame, a custom object) is judged by Jinja every time."""

from __future__ import annotations

import types
from typing import Any

from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

PLAIN = frozenset({dict, list, tuple, str, int, float, bool, type(None), Markup})
FORMATS = ("format", "format_map")  # str's: Jinja sandboxes them itself
VERDICTS_MAX = 1024  # names come from templates, but `attr` can take one from data


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's ImmutableSandboxedEnvironment, its verdicts on plain data remembered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verdicts: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        kind = type(obj)
        if kind not in PLAIN:
            return super().is_safe_attribute(obj, attr, value)
        key = (kind, attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = super().is_safe_attribute(obj, attr, value)
            if len(self._verdicts) < VERDICTS_MAX:
                self._verdicts[key] = verdict
        return verdict

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # a method of plain data, reached through is_safe_attribute: no decorator can mark
        # it unsafe (what is_safe_callable looks for)
        if (
            type(__obj) is types.BuiltinMethodType
            and type(__obj.__self__) in PLAIN
            and __obj.__name__ not in FORMATS
        ):
            return __context.call(__obj, *args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)
