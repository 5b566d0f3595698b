"""On a Redis Cluster: the calls of one loop turn, one plain pipeline per node.

redis-py's ClusterPipeline (what coalesce.py used on a cluster before) serves the store's
calls made together poorly:

- When a node's pipeline cannot be written (a node that stops answering: opening a
  connection to it times out), it closes the whole cluster client (``aclose()``: every node's
  connections, those of other calls in flight too), waits 0.25 s and sends again the commands
  not answered (or answered with a falsy value), up to its ``retry`` (10 times by default),
  then raises for every command of the pipeline. A frozen primary (SIGSTOP, socket_timeout
  2 s) thus failed all 12 calls of a loop turn after 28.8 s, the 8 for the two healthy nodes
  included, though they had run there. With the node's connection already open, only the
  reads time out and each command keeps its error, but the nodes' answers are handed back
  together: the healthy nodes' calls waited the frozen node's 2 s.
- Its routing and bookkeeping is Python per command (a policy lookup, slot and node
  resolution, a ``PipelineCommand``).

Here the calls are grouped by the node that owns the slot of each one's key (redis-py's
``nodes_manager`` slot map) and each group goes in one write on a connection of that node's
own pool (redis-py's ``ClusterNode``: the watched connections of connection.py, commands
packed by hiredis), the nodes concurrently, each node's calls answered as soon as it answers:

- an error reply is its call's own (a NoScriptError goes back to the coalescer, which sends
  that call alone: it loads the script);
- MOVED (the slot moved, or a replica took over): the slot map is patched as redis-py does
  (``nodes_manager.move_slot``) and the call is sent once more, to the new owner; ASK (the
  slot is migrating): once more to the node named, after ``ASKING``;
- a connection error or a timeout fails that node's calls not yet answered, with that error,
  and none other; the node's connections are recycled and the slot map is asked again from
  the other nodes (in the background, at most once a second, and not while every primary
  fails or the map is being asked already: those asks queue with redis-py's own, which the
  store's direct calls wait for), so a replica that took over gets the calls of its slots (a
  frozen primary answers no MOVED);
- a node that restarted while its connections sat idle: the one a pipeline takes is looked
  at first (connection.stale), and connected anew when Redis closed it; redis-py's node
  lends it unlooked, and the node's first calls after the restart failed.

The frozen primary above: the healthy nodes' calls answered at once, the frozen node's
failed at 2.0 s, turn after turn (tests/test_node_pipelines.py). The client CPU per call,
taking turns with ClusterPipeline in one process on the shared 2-core VM: 0.81-0.84x in
``bench.redis_call``'s coalesced shape (32 tasks each making one call after another, 30
arguments a call), 0.74x when the 32 calls of each turn are made together (the tasks come
back in waves, one per node, as the nodes answer: more, smaller pipelines a call than when
every node's answers came back together).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.cluster import PRIMARY
from redis.exceptions import (
    AskError,
    ConnectionError,
    MaxConnectionsError,
    MovedError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
)

from .connection import stale

log = logging.getLogger(__name__)

Command = tuple[Any, ...]  # a command's words, its name first
# Gets one node's answers: the commands' positions, and an answer or error for each
Answered = Callable[[list[int], list[Any]], Awaitable[None]]
REFRESH_EVERY_S = 1.0  # the slot map is asked again at most this often after node failures


class NodePipelines:
    """Sends the commands of one loop turn to a cluster, one pipeline per node."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._refreshed_at = -REFRESH_EVERY_S
        self._failing: set[str] = set()  # the nodes whose last pipeline here failed
        self._refresh: asyncio.Task[None] | None = None  # held: the loop keeps a weak ref

    async def send(
        self, keys: Sequence[Any], commands: Sequence[Command], answered: Answered
    ) -> None:
        """Sends ``commands``, ``keys[i]`` routing ``commands[i]`` (the key whose slot it
        runs in); ``answered(at, answers)`` gets each node's answers as soon as it answers
        (``answers[j]`` for ``commands[at[j]]``, an error in place of an answer)."""
        client = self._client
        manager = client.nodes_manager
        if not manager.slots_cache:  # never found, or lost: ask the cluster first
            await client.initialize()
        uncovered: list[int] = []
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, key in enumerate(keys):
            try:
                node = manager.get_node_from_slot(client.keyslot(key))
            except SlotNotCoveredError:  # mid-failover: its calls fail alone
                uncovered.append(i)
                continue
            groups.setdefault(node.name, (node, []))[1].append(i)
        if uncovered:  # the map is out of date, or the cluster mid-failover: ask it again
            self._refresh_map()
            error = SlotNotCoveredError("no node of the cluster covers the slot")
            await answered(uncovered, [error] * len(uncovered))
        await asyncio.gather(
            *(self._on(node, at, commands, answered) for node, at in groups.values())
        )

    async def _on(
        self, node: ClusterNode, at: list[int], commands: Sequence[Command], answered: Answered
    ) -> None:
        """One node's commands (those at ``at``), and their answers to ``answered``."""
        answers = await self._exchange(node, [commands[i] for i in at])
        if any(isinstance(answer, AskError) for answer in answers):  # MovedError is one too
            await self._follow(answers, [commands[i] for i in at])
        await answered(at, answers)

    async def _follow(self, answers: list[Any], commands: Sequence[Command]) -> None:
        """The commands answered MOVED or ASK sent once more, where the answer says their
        slot is (one pipeline per node), their new answers put in ``answers``."""
        manager = self._client.nodes_manager
        groups: dict[str, tuple[ClusterNode, list[Command], list[tuple[int, int]]]] = {}
        for j, error in enumerate(answers):
            if not isinstance(error, AskError):
                continue
            if isinstance(error, MovedError):  # the slot has a new owner: the map learns it
                await manager.move_slot(error)
                node: ClusterNode | None = manager.get_node_from_slot(error.slot_id)
                sent = [commands[j]]
            else:  # the slot is migrating: this once, on the node it goes to
                node = manager.get_node(host=error.host, port=error.port)
                sent = [("ASKING",), commands[j]]
            if node is None:  # a node the map does not know yet: ask the cluster again
                self._refresh_map()
                continue
            group = groups.setdefault(node.name, (node, [], []))
            group[1].extend(sent)
            group[2].append((j, len(group[1]) - 1))  # where its answer comes back
        resent = await asyncio.gather(*(self._exchange(n, sent) for n, sent, _ in groups.values()))
        for (_, _, places), got in zip(groups.values(), resent, strict=True):
            for j, position in places:
                answers[j] = got[position]

    async def _exchange(self, node: ClusterNode, commands: Sequence[Command]) -> list[Any]:
        """``commands`` in one write on one of ``node``'s connections, their answers in order
        (an error reply in its command's place); a failed connection fails the commands it
        has not answered with its error."""
        answers: list[Any] = []
        try:
            connection = node.acquire_connection()
        except MaxConnectionsError as exc:  # all in use: the process's load, not the node
            return [exc] * len(commands)
        try:
            await node.disconnect_if_needed(connection)  # marked by a slot-map refresh
            if await stale(connection):  # the node restarted while it sat idle
                await connection.disconnect(nowait=True)  # (the write connects it again)
            await connection.send_packed_command(connection.pack_commands(commands))
            for command in commands:
                try:
                    answers.append(await node.parse_response(connection, command[0]))
                except ResponseError as exc:
                    answers.append(exc)
            self._failing.discard(node.name)
        except Exception as exc:
            answers += [exc] * (len(commands) - len(answers))
            if isinstance(exc, ConnectionError | TimeoutError):
                self._node_failed(node)
        finally:
            node.release(connection)
        return answers

    def _node_failed(self, node: ClusterNode) -> None:
        """As redis-py does for a command that failed on ``node``, without closing the client
        and without holding up the answers: the node's connections are recycled (in use: once
        released; idle: in the background) and it is asked last for the slot map. The map is
        asked for again unless every primary's last pipeline here failed: while every node is
        down that is no use, and each try would wait a timeout per node."""
        node.update_active_connections_for_reconnect()
        manager = self._client.nodes_manager
        manager.move_node_to_end_of_cached_nodes(node.name)
        self._failing.add(node.name)
        if any(n.name not in self._failing for n in manager.get_nodes_by_server_type(PRIMARY)):
            self._refresh_map(node)

    def _refresh_map(self, failed: ClusterNode | None = None) -> None:
        """Ask the cluster its slot map again, in the background, unless that was done less
        than REFRESH_EVERY_S ago or is under way (here, or by redis-py or another of the
        client's coalescers: they queue on the map's lock, a direct call's retry behind
        them)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._refreshed_at < REFRESH_EVERY_S:
            return
        if self._client.nodes_manager._initialize_lock.locked():
            return
        self._refreshed_at = loop.time()
        self._refresh = loop.create_task(self._ask_map(failed))

    async def _ask_map(self, failed: ClusterNode | None) -> None:
        try:
            if failed is not None:
                await failed.disconnect_free_connections()
            name = None if failed is None else failed.name
            await self._client.nodes_manager.initialize(last_failed_node_name=name)
        except Exception as exc:  # no node answers: a later failure asks again
            log.warning("cannot refresh the cluster's slot map: %s", exc)
