"""The hand-off record (lightflow.triggers.ledger): the journal file and the Redis ledger.

Both backends pass the same contract (replay of begin/finish/forget by a new owner,
ownership refused to a second one); then each its own: the journal's torn last line,
compaction and lock, Redis ownership expiring, renewed and taken over.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightflow.exceptions import LightflowError
from lightflow.queue.state import connect
from lightflow.triggers import ledger as ledger_module
from lightflow.triggers.ledger import OWNER_TTL, Batch, FileLedger, Ledger, RedisLedger

from tests.servers import ServerProcess

MakeLedger = Callable[[], Ledger]


@pytest.fixture(scope="module")
def redis_client(redis_server: ServerProcess) -> Any:
    return connect(f"redis://{redis_server.address}/7")


@pytest.fixture(params=["file", "redis"])
def make_ledger(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: ServerProcess
) -> Iterator[MakeLedger]:
    """``make_ledger()``: a new owner of the same trigger's ledger, on either backend."""
    name = f"detector/{uuid.uuid4().hex[:6]}"  # '/' and ':' must be safe in a file name
    opened: list[Ledger] = []

    def make() -> Ledger:
        if request.param == "file":
            ledger: Ledger = FileLedger(name, tmp_path / "state")
        else:
            ledger = RedisLedger(name, request.getfixturevalue("redis_client"))
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


def batch(*keys: str, **arguments: Any) -> Batch:
    return Batch(uuid.uuid4().hex, list(keys), arguments or {"items": list(keys)})


# -- the contract, on both backends ---------------------------------------------------------
def test_a_new_owner_replays_begin_finish_and_forget(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    first, second, third = batch("a", "b"), batch("c"), batch("d", value=[1.5, 2.5])
    for each in (first, second, third):
        ledger.begin(each)
    assert ledger.handed("c")  # begun counts as handed off
    ledger.finish(first.id)
    ledger.finish(second.id)
    ledger.forget(["a", "zzz"])  # a key never handed off is ignored
    assert ledger.keys == {"b", "c", "d"}
    ledger.close()

    again = make_ledger()
    assert again.keys == {"b", "c", "d"}
    assert not again.handed("a") and again.handed("d")
    assert again.unfinished() == [third]  # keys and arguments as begun
    again.finish(third.id)
    again.close()
    assert make_ledger().unfinished() == []


def test_unfinished_batches_come_oldest_first(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    batches = [batch(f"k{number}") for number in range(20)]
    for each in batches:
        ledger.begin(each)
    for each in batches[::3]:
        ledger.finish(each.id)
    ledger.close()
    pending = [each for index, each in enumerate(batches) if index % 3]
    assert make_ledger().unfinished() == pending


def test_a_second_owner_is_refused_while_the_first_holds_the_trigger(
    make_ledger: MakeLedger,
) -> None:
    first = make_ledger()
    with pytest.raises(LightflowError, match=r"already watched by") as refused:
        make_ledger()
    assert "\n" not in str(refused.value)
    first.begin(batch("a"))  # the first goes on
    first.close()
    assert make_ledger().keys == {"a"}


# -- the journal ----------------------------------------------------------------------------
def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    ledger = FileLedger("t", tmp_path)
    done, pending = batch("a"), batch("b")
    ledger.begin(done)
    ledger.finish(done.id)
    ledger.begin(pending)
    ledger.close()
    with open(tmp_path / "t.ledger", "a") as journal:
        journal.write(batch("c").encode()[:40])  # killed while writing
    again = FileLedger("t", tmp_path)
    assert again.keys == {"a", "b"}
    assert again.unfinished() == [pending]


def test_the_journal_is_compacted_when_the_trigger_starts(tmp_path: Path) -> None:
    ledger = FileLedger("t", tmp_path)
    for number in range(100):
        each = batch(f"k{number}")
        ledger.begin(each)
        ledger.finish(each.id)
    pending = batch("last")
    ledger.begin(pending)
    ledger.forget(["k0"])
    ledger.close()
    journal = tmp_path / "t.ledger"
    assert len(journal.read_text().splitlines()) == 202
    again = FileLedger("t", tmp_path)
    assert len(journal.read_text().splitlines()) == 3  # handed keys, their finish, pending
    assert again.keys == {f"k{number}" for number in range(1, 100)} | {"last"}
    assert again.unfinished() == [pending]
    again.finish(pending.id)
    again.close()
    assert FileLedger("t", tmp_path).unfinished() == []
    assert not (tmp_path / "t.ledger.tmp").exists()


def test_another_process_is_refused_with_one_line(tmp_path: Path) -> None:
    ledger = FileLedger("detector", tmp_path)
    code = (
        "import sys; from pathlib import Path\n"
        "from lightflow.exceptions import LightflowError\n"
        "from lightflow.triggers.ledger import FileLedger\n"
        "try:\n"
        f"    FileLedger('detector', Path({str(tmp_path)!r}))\n"
        "except LightflowError as error:\n"
        "    sys.exit(str(error))\n"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode == 1
    assert other.stderr.splitlines() == [
        f"trigger 'detector' is already watched by another process on this host "
        f"(it holds {tmp_path / 'detector.ledger'}); stop that process first"
    ]
    ledger.close()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def test_a_lock_taken_while_the_owner_compacts_is_not_ownership(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newcomer opened the journal; the owner started and swapped in a compacted one."""
    FileLedger("t", tmp_path).close()
    owners: list[FileLedger] = []
    real_flock = ledger_module.fcntl.flock

    def flock_after_the_owner_compacted(file: Any, operation: int) -> None:
        if not owners:
            monkeypatch.setattr(ledger_module.fcntl, "flock", real_flock)
            owners.append(FileLedger("t", tmp_path))  # locks, compacts, renames
        real_flock(file, operation)

    monkeypatch.setattr(ledger_module.fcntl, "flock", flock_after_the_owner_compacted)
    with pytest.raises(LightflowError, match="already watched by another process"):
        FileLedger("t", tmp_path)
    owners[0].close()


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(
        LightflowError, match=r"cannot keep the record of trigger 't' in .*--state-dir"
    ):
        FileLedger("t", blocker / "state")


# -- Redis ownership -----------------------------------------------------------------------
def owner_key(ledger: RedisLedger) -> str:
    return f"lf:trigger:{ledger.trigger}:owner"


def test_redis_ownership_expires_unless_renewed_and_can_be_taken_over(redis_client: Any) -> None:
    name = f"pv-{uuid.uuid4().hex[:6]}"
    first = RedisLedger(name, redis_client)
    key = owner_key(first)
    assert OWNER_TTL * 1000 - 2000 < redis_client.pttl(key) <= OWNER_TTL * 1000

    redis_client.pexpire(key, 2000)  # time passed without a renewal
    first.renew()
    assert redis_client.pttl(key) > OWNER_TTL * 1000 - 2000  # renewed for a full TTL

    redis_client.pexpire(key, 100)  # the owner stopped renewing (paused, cut off)
    with pytest.raises(LightflowError, match="already watched"):
        RedisLedger(name, redis_client)
    wait_for_expiry(redis_client, key)
    second = RedisLedger(name, redis_client)  # takes the trigger over
    with pytest.raises(LightflowError, match=f"'{name}' was taken over by .*/[0-9]+#"):
        first.renew()
    first.close()  # must not give up what the second holds
    assert redis_client.get(key).decode() == redis_client.get(owner_key(second)).decode()
    second.renew()
    second.close()
    assert redis_client.get(key) is None


def test_a_renewal_after_expiry_keeps_the_trigger_if_nobody_took_it(redis_client: Any) -> None:
    ledger = RedisLedger(f"pv-{uuid.uuid4().hex[:6]}", redis_client)
    redis_client.delete(owner_key(ledger))
    ledger.renew()
    assert redis_client.pttl(owner_key(ledger)) > 0
    ledger.close()


def test_an_owner_killed_on_this_host_is_taken_over_at_once(redis_client: Any) -> None:
    name = f"pv-{uuid.uuid4().hex[:6]}"
    key = f"lf:trigger:{name}:owner"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    redis_client.set(key, f"{socket.gethostname()}/{dead}#abc123", px=15000)
    ledger = RedisLedger(name, redis_client)
    assert redis_client.get(key).decode().startswith(f"{socket.gethostname()}/{os.getpid()}#")
    ledger.close()

    redis_client.set(key, f"beamline-pc-2/{dead}#abc123", px=15000)  # cannot tell: refused
    with pytest.raises(LightflowError) as refused:
        RedisLedger(name, redis_client)
    assert str(refused.value) == (
        f"trigger '{name}' is already watched by beamline-pc-2/{dead}#abc123; stop that "
        f"process, or wait {OWNER_TTL:g} s if it died on another host"
    )


def wait_for_expiry(client: Any, key: str) -> None:
    import time

    deadline = time.monotonic() + 5
    while client.exists(key):
        assert time.monotonic() < deadline, "the ownership did not expire"
        time.sleep(0.02)
