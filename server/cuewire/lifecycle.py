"""``async with`` for everything long-lived that closes with ``aclose()``.

The app's lifespan opens these in one ``AsyncExitStack`` (app.py ``serving``) and closes them
in reverse order.
"""

from __future__ import annotations

from typing import Self


class Closing:
    """Mixin: ``async with obj`` returns ``obj`` and awaits ``obj.aclose()`` on the way out."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        raise NotImplementedError
