"""A run's history: its events and log lines, in Redis while it runs, in the store after.

While a run goes on, each event is appended to ``lf:run:<id>:events`` (and to the live
stream of all runs) by the commit that makes it, and each task log line to the stream
``lf:run:<id>:logs``: followers read them as they come. Once the run has finished,
:func:`archive` moves both to the store's run archive
(:class:`~lightflow.store.archive.RunArchive`) and notes in the run's record what moved
(``archived_events``: how many events; ``archived_logs``: the id of the last log entry),
trimming Redis in the same atomic step. So the state server keeps about a kilobyte per
finished run whatever its width, and a reader sees every item in exactly one of the
two places: :func:`read_events` and :func:`read_log` read both and join them. An
event's id (its position in the run's history) and a line's entry id do not change.
If the store cannot take the history, it stays in Redis.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..exceptions import StoreError
from . import state as rs
from .cluster import Cluster

logger = logging.getLogger("lightflow.worker")

ARCHIVED_EVENTS, ARCHIVED_LOGS = "archived_events", "archived_logs"

#: Notes what was archived and drops it from Redis, atomically (KEYS: the record, the
#: events list, the log stream; ARGV: events archived, first log id not archived or '').
_TRIM = """
redis.call('HINCRBY', KEYS[1], 'archived_events', ARGV[1])
redis.call('LTRIM', KEYS[2], ARGV[1], -1)
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'archived_logs', ARGV[3])
  redis.call('XTRIM', KEYS[3], 'MINID', ARGV[2])
  if redis.call('XLEN', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
end
return 1
"""


def archive(cluster: Cluster, run_id: str) -> None:
    """Move a finished run's events and log lines to the store (see the module docstring)."""
    client = cluster.redis
    events_key, logs_key = rs.run_key(run_id, "events"), rs.run_key(run_id, "logs")
    events = [rs.text(raw) for raw in client.lrange(events_key, 0, -1)]
    entries: Any = client.xrange(logs_key)
    lines = [json.dumps([rs.text(entry), rs.text(fields[b"line"])]) for entry, fields in entries]
    try:
        cluster.archive.write(run_id, "events", events)
        cluster.archive.write(run_id, "logs", lines)
    except StoreError as error:
        logger.warning("the history of run %s stays in Redis: %s", run_id, error)
        return
    last = rs.text(entries[-1][0]) if entries else ""
    cluster.script(_TRIM)(
        keys=[rs.run_key(run_id), events_key, logs_key],
        args=[len(events), _next_id(last) if last else "", last],
    )


def read_events(cluster: Cluster, run_id: str, start: int = 0) -> list[dict[str, Any]]:
    """The run's events from position ``start`` of its history on, oldest first."""
    client = cluster.redis
    record, key = rs.run_key(run_id), rs.run_key(run_id, "events")
    while True:
        archived = int(client.hget(record, ARCHIVED_EVENTS) or 0)
        pipe = client.pipeline(transaction=True)
        pipe.hget(record, ARCHIVED_EVENTS)
        pipe.lrange(key, max(start - archived, 0), -1)
        now_archived, recent = pipe.execute()
        if int(now_archived or 0) == archived:  # else archived meanwhile: read again
            break
    older = cluster.archive.read(run_id, "events", start, archived) if start < archived else []
    return [json.loads(raw) for raw in [*older, *recent]]


def read_log(
    cluster: Cluster, run_id: str, after: str = "0-0", *, block: float | None = None
) -> tuple[list[str], str]:
    """A run's log lines written after entry ``after``, and the last entry's id.

    With ``block``, waits up to that many seconds for a line of a run whose log is
    still in Redis when there is none yet.
    """
    # The marker and the stream in one transaction: read apart, an archive between the
    # two would trim the stream of a run that looked unarchived, and show no line at all.
    pipe = cluster.redis.pipeline(transaction=True)
    pipe.hget(rs.run_key(run_id), ARCHIVED_LOGS)
    pipe.xread({rs.run_key(run_id, "logs"): after})
    archived, reply = pipe.execute()
    if archived is None:
        entries = reply[0][1] if reply else []
        if entries or block is None:
            lines = [rs.text(fields[b"line"]) for _entry, fields in entries]
            return lines, rs.text(entries[-1][0]) if entries else after
        # Nothing yet: wait for a line. Should the run be archived meanwhile, the wait
        # ends empty and the caller's next read finds the lines in the archive.
        return rs.read_log(cluster.redis, run_id, after, block=block)
    older = []
    for raw in cluster.archive.read(run_id, "logs"):
        entry, line = json.loads(raw)
        if _id(entry) > _id(after):
            older.append(line)
            after = entry
    last = rs.text(archived) if _id(rs.text(archived)) > _id(after) else after
    recent, last = rs.read_log(cluster.redis, run_id, last)
    return [*older, *recent], last


def prune(cluster: Cluster, older_than: float, *, dry_run: bool = False) -> list[str]:
    """Delete the runs that ended more than ``older_than`` seconds ago, histories too.

    Which runs: see :func:`lightflow.queue.state.prune_finished_runs`. Their archived
    histories go from the store first, so a store that fails leaves the runs listed
    for the next prune; runs with nothing archived never need the store.
    """
    client = cluster.redis
    pruned = rs.prune_finished_runs(client, older_than, dry_run=True)
    if dry_run or not pruned:
        return pruned
    pipe = client.pipeline(transaction=False)
    for run_id in pruned:
        pipe.hexists(rs.run_key(run_id), ARCHIVED_EVENTS)
    archived = [run_id for run_id, has in zip(pruned, pipe.execute(), strict=True) if has]
    if archived:
        cluster.archive.remove(archived)
    rs.delete_runs(client, pruned)
    return pruned


def _id(entry: str) -> tuple[int, int]:
    milliseconds, _dash, sequence = entry.partition("-")
    return int(milliseconds), int(sequence or 0)


def _next_id(entry: str) -> str:
    milliseconds, sequence = _id(entry)
    return f"{milliseconds}-{sequence + 1}"
