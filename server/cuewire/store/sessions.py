"""The Redis store's sessions and visitors by id, outside a batch: opening a session (a
connect, open_session.lua), releasing its socket, and the reads of a session's or visitor's
facts, a session's recent events, a visitor's sessions and the visitor a user id is linked
to (identity.py). On a cluster, a session read by its id alone first finds its visitor
(``sv:`` keys, keys.py)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import StoreError
from ..ids import new_id
from ..keys import Keys
from ..settings import Settings
from .base import Facts, OpenedSession
from .scripts import lua
from .shared import FAILURES, Client, guard, pairs, pairs_of

SESSION_VISITOR_TTL_S = 24 * 3600
# a session's keys outlive its last event by this much, and then some (open_session.lua's
# GRACE_S + REFRESH_S): what the visitor's sessions index keeps
SESSION_GRACE_S = 300 + 60  # on a cluster, how long a session id finds its visitor


class Sessions:
    """The store's session and visitor calls on ``client``."""

    def __init__(self, client: Client, keys: Keys, settings: Settings) -> None:
        self._r = client
        self._k = keys
        self._s = settings
        self._open = client.register_script(lua("read.lua") + lua("open_session.lua"))
        self._release = client.register_script(lua("release_socket.lua"))

    async def open_session(
        self,
        site: str,
        visitor: str,
        session: str | None,
        now_ms: int,
        describe: dict[str, str] | None = None,
        fields: str = "",
    ) -> OpenedSession:
        """Resume ``session`` or start a new one; with ``fields`` (``RuleSet.fields_json``),
        return those facts as the session starts, for the process to know them."""
        k = self._k
        fresh_id = new_id("s_")
        held = k.session(site, session or fresh_id, visitor)
        args: list[Any] = [now_ms, self._s.session_ttl_s, self._s.visitor_ttl_s, visitor, fresh_id]
        args += [fields, session or ""]
        for pair in (describe or {}).items():
            args += pair
        try:
            resumed, returning, prev, sess, vis = await self._open(
                keys=[
                    held,
                    k.session(site, fresh_id, visitor),
                    k.visitor(site, visitor),
                    k.visitor_sessions(site, visitor),
                ],
                args=args,
            )
            if k.cluster and not (resumed and session):  # for reads by session id alone
                await self._r.set(
                    k.session_visitor(site, fresh_id), visitor, ex=SESSION_VISITOR_TTL_S
                )
        except FAILURES as exc:
            raise StoreError(f"cannot open a session: {exc}") from exc
        return OpenedSession(
            session=session if resumed and session else fresh_id,
            resumed=bool(resumed),
            returning=bool(returning),
            previous_visit_ms=int(prev) if prev else None,
            facts=(pairs(sess), pairs(vis)) if fields else None,
        )

    async def visitor_facts(self, site: str, visitor: str) -> Facts:
        async with guard("read visitor facts"):
            return pairs_of(await self._r.hgetall(self._k.visitor(site, visitor)))

    async def release_socket(
        self, site: str, session: str, sid: str, visitor: str | None = None
    ) -> None:
        try:
            owner = await self._visitor_of(site, session, visitor)
            if owner is not None:
                await self._release(keys=[self._k.session(site, session, owner)], args=[sid])
        except FAILURES as exc:
            raise StoreError(f"cannot release a socket: {exc}") from exc

    async def _visitor_of(self, site: str, session: str, visitor: str | None) -> str | None:
        """The visitor whose tag a session's keys carry: ``visitor`` when given; on a cluster
        without it, the visitor the session started with (None when unknown); on one Redis
        none is needed ("")."""
        if visitor or not self._k.cluster:
            return visitor or ""
        found = await self._r.get(self._k.session_visitor(site, session))
        return str(found) if found else None

    async def link_user(self, site: str, user_id: str, visitor: str) -> None:
        """Link ``user_id`` to ``visitor``: call it for verified identifies only (identity.py)."""
        async with guard("link a user id"):
            await self._r.set(self._k.user(site, user_id), visitor, ex=self._s.visitor_ttl_s)

    async def visitor_of_user(self, site: str, user_id: str) -> str | None:
        """The visitor ``user_id`` was last verified on, or None."""
        async with guard("look up a user id"):
            found = await self._r.get(self._k.user(site, user_id))
        return str(found) if found is not None else None

    async def visitor_sessions(self, site: str, visitor: str, now_ms: int) -> dict[str, int]:
        """The visitor's sessions whose keys may still live at ``now_ms``: session -> when
        their time to live was last set (ms), newest first (keys.visitor_sessions)."""
        oldest = now_ms - (self._s.session_ttl_s + SESSION_GRACE_S) * 1000
        async with guard("read a visitor's sessions"):
            found = await self._r.zrevrangebyscore(
                self._k.visitor_sessions(site, visitor), "+inf", oldest, withscores=True
            )
        return {str(pair[0]): int(pair[1]) for pair in found}

    async def session_facts(self, site: str, session: str, visitor: str | None = None) -> Facts:
        async with guard("read session facts"):
            owner = await self._visitor_of(site, session, visitor)
            if owner is None:
                return {}
            return pairs_of(await self._r.hgetall(self._k.session(site, session, owner)))

    async def recent_events(
        self, site: str, session: str, count: int, visitor: str | None = None
    ) -> list[dict[str, Any]]:
        async with guard("read recent events"):
            owner = await self._visitor_of(site, session, visitor)
            if owner is None:
                return []
            raw = await self._r.lrange(self._k.recent(site, session, owner), 0, count - 1)
        return [json.loads(item) for item in raw]
