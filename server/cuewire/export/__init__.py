"""The export of events and decisions to a warehouse (docs/export.md).

- ``records.py``: the versioned records (``v: 1``): ``event``, ``decision``, ``conversion``,
  and how a stream entry becomes them.
- ``reader.py``: one site's stream read through a Redis consumer group, exactly as far as it
  was acknowledged; gaps (entries trimmed before the group read them) reported with a code.
- ``postgres.py``: the PostgreSQL sink (asyncpg): tables, one transaction per batch,
  idempotent on replay, conversions derived in the same transaction.
- ``loader.py``: the loop that moves batches from readers to the sink, acknowledging only
  after the sink committed; ``cuewire export postgres`` and the ``export`` task of
  ``cuewire serve`` run it.
- ``sessions.py``: the events table read back as recorded sessions, for ``cuewire segment``
  and ``cuewire train --from-export`` (docs/learning.md).
"""
