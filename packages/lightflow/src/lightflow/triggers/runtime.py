"""The trigger runtime: long-running watchers that start workflow runs, exactly once.

One process hosts any number of triggers (:class:`TriggerSpec`: a source, a workflow,
how events become runs). Each trigger has a thread that takes its source's events in
the order they happened and decides, the same way for every kind of source:

1. **condition**: ``source.accept(event)`` (a PV's ``value > 3``) drops the others;
2. **once per key**: an event whose key was handed off already (ledger) or is
   waiting in the open batch is dropped (a file reported by the watch and the scan);
3. **debounce**: at most one run per ``debounce`` window; the events in between are
   folded into the window's last one (their keys are handed off with it), and the
   log says how many;
4. **aggregate**: events are batched ``aggregate`` at a time;
5. **hand-off**: the batch's arguments (``source.arguments(batch)``, those the
   workflow declares, plus the trigger's fixed ``arguments``) are validated by the
   workflow's ``Parameters``, the batch is written ahead to the ledger, and the run
   is started under the batch's id (:mod:`.launcher`): on the cluster through
   :func:`lightflow.api.start_workflow`, else in a process of its own on the
   embedded engine. One log line per started run names the run and the event count.

**Exactly once across restarts.** Hand-offs are written ahead (:mod:`.ledger`) and
started idempotently per batch id. When a trigger starts, it first starts again the
batches begun but not recorded as started (the process died in between: each starts
only if it had not), then hands off what the source reports as already there
(``source.existing()``: files that appeared while nothing watched) whose keys the
ledger does not hold. Events not handed off when the trigger stops are not recorded,
so the next start hands them off (if the source reports them as already there).

**Stopping.** :meth:`TriggerRuntime.stop` (SIGINT/SIGTERM under
:func:`run_triggers`) ends every trigger within 1 s: sources are stopped in parallel,
the threads look at the stop flag at least every 0.25 s. Runs already started on the
cluster go on; on the embedded engine they are asked to stop (:mod:`.launcher`).
Events of a partial batch, or held back by the debouncer, are logged by key. A
trigger that another process took over (its Redis ownership lapsed) stops the
runtime, and :func:`run_triggers` ends with that error.

**A start that fails** because the state server or broker is unreachable is retried
every second (logged once per outage) while events wait; arguments the workflow
refuses are logged with the keys of their events, which are then not handed off (a
restart tries them again). The workflow file is loaded again when it changes; a
changed file that does not load is logged and the version loaded before is kept (runs
always get the workflow the trigger loaded and checked, never the file as it is).

The state of each trigger is published (:mod:`.status`) for ``lightflow triggers
list`` and the REST API.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, LightflowError
from .launcher import ClusterLauncher, EmbeddedLauncher, Launcher
from .ledger import OWNER_TTL, Batch, FileLedger, Ledger, RedisLedger, file_name
from .policy import Batcher, Debouncer, Release, left_over
from .settings import TriggerSpec, default_state_dir
from .source import TriggerEvent, event_names
from .status import PUBLISH_INTERVAL, FileStatusBoard, RedisStatusBoard, StatusBoard

if TYPE_CHECKING:
    from ..config import Config
    from ..workflows import Workflow

logger = logging.getLogger("lightflow.triggers")

#: Seconds a trigger's thread waits for an event before it looks at the stop flag.
STOP_CHECK_INTERVAL = 0.25
#: Seconds between two tries to start a run while the cluster cannot be reached.
RETRY_INTERVAL = 1.0
#: Seconds :meth:`TriggerRuntime.stop` takes at most (the promise is 1 s, the process's
#: own exit included).
STOP_WITHIN = 0.8
ENGINES = ("cluster", "embedded")


class _Trigger:
    """One running trigger: its thread, ledger, launcher and counts."""

    def __init__(
        self,
        spec: TriggerSpec,
        runtime: TriggerRuntime,
        ledger: Ledger,
        launcher: Launcher,
        workflow: Workflow,
    ) -> None:
        self.spec = spec
        self._runtime = runtime
        self.ledger = ledger
        self._launcher = launcher
        self._workflow = workflow
        self._workflow_mtime = _mtime(workflow.path)
        self._events: queue.SimpleQueue[TriggerEvent] = queue.SimpleQueue()
        self._batcher = Batcher(spec.aggregate)
        self._debouncer = Debouncer(spec.debounce)
        # Keys in the open batch or held by the debouncer (not in the ledger yet), and
        # the keys folded into events of the open batch.
        self._waiting: set[str] = set()
        self._folded_keys: list[str] = []
        self._counts = {"events": 0, "accepted": 0, "folded": 0, "runs": 0}
        self._last_run: str | None = None
        self._last_event: float | None = None
        self._sizes: dict[str, int] = {}  # events per batch begun, for the started line
        self._error: str | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._serve, name=f"trigger-{spec.name}", daemon=True
        )
        self.started_at = time.time()

    # -- life ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the source, hand off what is pending, and serve events from now on.

        Raises:
            LightflowError: The source cannot start (one line naming the trigger).
        """
        spec = self.spec
        self._launcher.open(self._workflow)
        unfinished = self.ledger.unfinished()
        self._launcher.prune(batch.id for batch in unfinished)
        for batch in unfinished:
            self._sizes[batch.id] = len(batch.keys)
            self._launch(batch)  # started only if it had not
        forgotten = list(spec.source.forgotten(self.ledger.keys))
        self.ledger.forget(forgotten)
        try:
            spec.source.start(self._events.put)
        except Exception as error:  # an extension's own error types too: one line
            problem = str(error) if isinstance(error, LightflowError) else repr(error)
            raise LightflowError(f"trigger '{spec.name}': {problem}") from None
        self._thread.start()

    def stop(self) -> None:
        """Stop the source (the thread ends within :data:`STOP_CHECK_INTERVAL`)."""
        try:
            self.spec.source.stop()
        except Exception as error:  # a source that fails to stop must not keep the others
            logger.warning("trigger %s: stopping its source failed: %s", self.spec.name, error)

    def join(self, deadline: float) -> None:
        """Wait for the thread, close the launcher and the ledger, by ``deadline``."""
        if self._thread.ident is not None:  # not started if the trigger failed to start
            self._thread.join(max(deadline - time.monotonic(), 0.0))
        self._launcher.close(deadline)
        self.ledger.close()

    # -- the thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        stopping = self._runtime.stopping
        try:
            for event in self.spec.source.existing():
                if stopping.is_set():
                    break
                self._offer(event)
            while not stopping.is_set():
                due = self._debouncer.due()
                timeout = STOP_CHECK_INTERVAL if due is None else min(due, STOP_CHECK_INTERVAL)
                try:
                    event = self._events.get(timeout=timeout)
                except queue.Empty:
                    released = self._debouncer.expire()
                    if released is not None:
                        self._add(released)
                    continue
                self._offer(event)
        except Exception as error:  # the trigger ends; the others go on
            self._error = f"{type(error).__name__}: {error}"
            logger.error("trigger %s failed and stopped: %s", self.spec.name, self._error)
        finally:
            self._report_left_over()
            self._runtime.publish(self)

    def _offer(self, event: TriggerEvent) -> None:
        with self._lock:
            self._counts["events"] += 1
            self._last_event = event.time or time.time()
        if not self.spec.source.accept(event):
            return
        key = event.key
        if key is not None:
            if key in self._waiting or self.ledger.handed(key):
                return
            self._waiting.add(key)
        with self._lock:
            self._counts["accepted"] += 1
        released = self._debouncer.offer(event)
        if released is not None:
            self._add(released)

    def _add(self, released: Release) -> None:
        folded = released.folded
        # Keys folded into the event are handed off with it: its run stands for them.
        self._folded_keys.extend(released.folded_keys)
        if folded:
            with self._lock:
                self._counts["folded"] += folded
            logger.info(
                "trigger %s: %d %s(s) folded into the last one of the debounce window",
                self.spec.name,
                folded,
                self.spec.source.noun,
            )
        batch = self._batcher.add(released.event)
        if batch:
            self._hand_off(batch)

    def _hand_off(self, events: list[TriggerEvent]) -> None:
        spec = self.spec
        keys = [event.key for event in events if event.key is not None]
        keys += self._folded_keys
        self._folded_keys = []
        self._waiting.difference_update(keys)
        workflow = self._current_workflow()
        offered = spec.source.arguments(events)
        declared = {option.name for option in workflow.parameters}
        arguments = {
            **spec.arguments,
            **{name: value for name, value in offered.items() if name in declared},
        }
        try:
            workflow.parameters.consolidate(arguments)
        except LightflowError as error:
            self._error = str(error)
            logger.error(
                "trigger %s: workflow %s refuses the arguments of %d %s(s), not handed off "
                "(%s): %s",
                spec.name,
                workflow.name,
                len(events),
                spec.source.noun,
                event_names(events),
                error,
            )
            self._runtime.publish(self)
            return
        batch = Batch(uuid.uuid4().hex, keys, arguments)
        self._sizes[batch.id] = len(events)
        if self._retrying(f"record run {batch.id}", lambda: self.ledger.begin(batch)):
            self._launch(batch)

    def _launch(self, batch: Batch) -> None:
        """Start the batch's run (begun in the ledger), retrying through outages."""
        self._retrying(f"start run {batch.id}", lambda: self._launcher.launch(batch, self._started))

    def _retrying(self, what: str, action: Callable[[], None]) -> bool:
        """Do ``action``, again every second while it fails; False if stopped first.

        What fails here is the state server or the broker (a start's own checks
        passed before): the failure is logged once, not once per try. Stopped
        before it succeeded, a begun batch stays unfinished in the ledger, and the
        next start of the trigger starts it.
        """
        outage = False
        while True:
            try:
                action()
            except Exception as error:  # redis-py's and kombu's errors too
                if not outage:
                    self._error = f"cannot {what}: {error}"
                    logger.error(
                        "trigger %s: cannot %s, trying again every %g s: %s",
                        self.spec.name,
                        what,
                        RETRY_INTERVAL,
                        error,
                    )
                    self._runtime.publish(self)
                    outage = True
            else:
                if outage:
                    logger.info("trigger %s: could %s after all", self.spec.name, what)
                return True
            if self._runtime.stopping.wait(RETRY_INTERVAL):
                return False

    def _started(self, batch_id: str) -> None:
        self.ledger.finish(batch_id)
        count = self._sizes.pop(batch_id, 0)
        with self._lock:
            self._counts["runs"] += 1
            self._last_run = batch_id
            self._error = None
        logger.info(
            "trigger %s: started run %s for %d %s(s)",
            self.spec.name,
            batch_id,
            count,
            self.spec.source.noun,
        )
        self._runtime.publish(self)

    def _current_workflow(self) -> Workflow:
        """The workflow, loaded again if its file changed (kept if it now fails)."""
        from .. import api

        mtime = _mtime(self._workflow.path)
        if mtime == self._workflow_mtime:
            return self._workflow
        self._workflow_mtime = mtime
        try:
            workflow = api.load(str(self._workflow.path), self._runtime.config)
            workflow.pickled()  # what the runs get: refused now rather than at each start
        except LightflowError as error:
            logger.error(
                "trigger %s: the changed workflow file does not load, the one loaded "
                "before is used: %s",
                self.spec.name,
                error,
            )
            return self._workflow
        self._workflow = workflow
        self._launcher.open(workflow)
        logger.info("trigger %s: workflow %s loaded again", self.spec.name, workflow.path)
        return workflow

    def _report_left_over(self) -> None:
        left = left_over(self._batcher, self._events, self._debouncer)
        if left:
            logger.warning(
                "trigger %s stopped with %d %s(s) not handed off (the next start hands "
                "them off): %s",
                self.spec.name,
                len(left),
                self.spec.source.noun,
                event_names(left),
            )

    # -- state --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The trigger's state as plain data (see :mod:`.status`)."""
        spec = self.spec
        with self._lock:
            counts = dict(self._counts)
            last_run, last_event, error = self._last_run, self._last_event, self._error
        try:
            source_state = spec.source.status()
        except Exception as failure:  # a source must not break the listing
            source_state = {"state": "unknown", "error": str(failure)}
        alive = self._thread.is_alive() or not self._thread.ident
        return {
            "name": spec.name,
            "kind": spec.source.kind,
            "source": spec.source.describe(),
            "source_state": source_state,
            "workflow": spec.workflow,
            "engine": self._runtime.engine,
            "state": "running" if alive and not self._runtime.stopping.is_set() else "stopped",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started_at,
            "updated": time.time(),
            "aggregate": spec.aggregate,
            "debounce": spec.debounce,
            "events": counts["events"],
            "accepted": counts["accepted"],
            "folded": counts["folded"],
            "runs": counts["runs"],
            "running": self._launcher.running,
            "last_run": last_run,
            "last_event": last_event,
            "waiting": len(self._batcher.pending),
            "error": error,
        }


class TriggerRuntime:
    """Hosts triggers in this process; see the module docstring.

    Args:
        specs: The triggers (names must be unique).
        config: The configuration (cluster settings, workflow folders).
        engine: ``cluster`` or ``embedded``; default: the cluster if a broker is
            configured.
        workers: Embedded engine: runs at once per trigger (default 1).
        state_dir: Embedded engine: where ledgers and states are kept (default
            :func:`~lightflow.triggers.settings.default_state_dir`).
    """

    def __init__(
        self,
        specs: Sequence[TriggerSpec],
        *,
        config: Config,
        engine: str | None = None,
        workers: int | None = None,
        state_dir: Path | None = None,
    ) -> None:
        if not specs:
            raise ConfigError(
                "no triggers to run: declare some in the 'triggers' section of "
                "lightflow.cfg, or start one with an extension's watch command"
            )
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"two triggers are named '{duplicates[0]}'; names must be unique")
        if engine is None:
            engine = "cluster" if config.broker_configured else "embedded"
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine '{engine}'; use one of: {', '.join(ENGINES)}")
        if engine == "cluster" and not config.broker_configured:
            raise ConfigError(
                "triggers cannot start runs on the cluster: no broker is configured "
                "(celery.broker_url in lightflow.cfg); or run them on the embedded engine"
            )
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.specs = list(specs)
        self.config = config
        self.engine = engine
        self.workers = workers or 1
        self.state_dir = state_dir or default_state_dir()
        #: Set when the runtime stops: by :meth:`stop`, or on its own when another
        #: process took a trigger over (its host then calls :meth:`stop`).
        self.stopping = threading.Event()
        #: Why the runtime stopped on its own (a trigger taken over), else ``None``.
        self.failure: str | None = None
        self._stop_lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._stopped = False
        self._triggers: list[_Trigger] = []
        self._client: Any = None
        self._board: StatusBoard | None = None
        self._housekeeper = threading.Thread(
            target=self._keep_house, name="trigger-housekeeping", daemon=True
        )

    # -- life ---------------------------------------------------------------------------
    def start(self) -> None:
        """Check every trigger, then start them all; nothing starts if one is invalid.

        Raises:
            LightflowError: A workflow does not load or cannot be pickled, does not
                declare what its source passes, misses a required argument or refuses
                a fixed one; the state server cannot be reached; another process
                watches the same trigger; a source cannot start.
        """
        from .. import api

        workflows = [self._checked_workflow(spec, api) for spec in self.specs]
        self._board = self._status_board()
        try:
            for spec, workflow in zip(self.specs, workflows, strict=True):
                trigger = _Trigger(spec, self, self._ledger(spec), self._launcher(spec), workflow)
                self._triggers.append(trigger)
                trigger.start()
                logger.info(
                    "trigger %s: watching %s, starting %s on the %s engine",
                    spec.name,
                    spec.source.describe(),
                    workflow.name,
                    self.engine,
                )
                self.publish(trigger)
        except BaseException:
            self.stop()
            raise
        self._housekeeper.start()

    def stop(self) -> None:
        """Stop every trigger within 1 s; runs already started go on. Idempotent."""
        self.stopping.set()
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            deadline = time.monotonic() + STOP_WITHIN
            stoppers = [
                threading.Thread(target=trigger.stop, daemon=True) for trigger in self._triggers
            ]
            for thread in stoppers:
                thread.start()
            for thread in stoppers:
                thread.join(max(deadline - time.monotonic(), 0.0))
            for trigger in self._triggers:
                trigger.join(deadline)
            for trigger in self._triggers:
                self.publish(trigger)

    def status(self) -> list[dict[str, Any]]:
        """The state of every trigger of this runtime."""
        return [trigger.state() for trigger in self._triggers]

    def publish(self, trigger: _Trigger) -> None:
        """Publish a trigger's state; a failure is logged, never raised.

        Three threads publish (the trigger's, the launcher's, the housekeeper's): one
        at a time, so a state taken earlier never overwrites a later one, and a state
        file is never written by two at once.
        """
        if self._board is None:
            return
        try:
            with self._publish_lock:
                self._board.publish(trigger.spec.name, trigger.state())
        except Exception as error:  # the state server may be down; the trigger goes on
            logger.debug("trigger %s: cannot publish its state: %s", trigger.spec.name, error)

    # -- building -----------------------------------------------------------------------
    def _checked_workflow(self, spec: TriggerSpec, api: Any) -> Workflow:
        """Load the workflow and check that the trigger can start it."""
        try:
            workflow: Workflow = api.load(spec.workflow, self.config)
        except LightflowError as error:
            raise type(error)(f"trigger '{spec.name}': {error}") from None
        declared = {option.name for option in workflow.parameters}
        passed = set(spec.source.parameters) & declared
        if spec.source.parameters and not passed:
            names = ", ".join(spec.source.parameters)
            raise ConfigError(
                f"trigger '{spec.name}': workflow {workflow.name} declares none of the "
                f"parameters a {spec.source.kind} trigger passes ({names}); add one to its "
                f"Parameters, e.g. Option('{spec.source.parameters[0]}')"
            )
        unknown = sorted(set(spec.arguments) - declared)
        if unknown:
            raise ConfigError(
                f"trigger '{spec.name}': workflow {workflow.name} has no parameter "
                f"'{unknown[0]}' (it accepts: {', '.join(sorted(declared)) or 'none'})"
            )
        missing = [
            option.name
            for option in workflow.parameters
            if option.required and option.name not in spec.arguments and option.name not in passed
        ]
        if missing:
            raise ConfigError(
                f"trigger '{spec.name}': workflow {workflow.name} needs parameter "
                f"'{missing[0]}'; give it in the trigger's 'arguments' (--arg "
                f"{missing[0]}=VALUE on a watch command)"
            )
        try:
            for option in workflow.parameters:
                if option.name in spec.arguments:  # the same for every run: checked once
                    option.convert(spec.arguments[option.name])
            workflow.pickled()  # what every run gets, on either engine
        except LightflowError as error:
            raise ConfigError(f"trigger '{spec.name}': {error}") from None
        return workflow

    def _redis(self) -> Any:
        if self._client is None:
            from ..queue.driver import state_url
            from ..queue.state import connect

            self._client = connect(state_url(self.config))
        return self._client

    def _status_board(self) -> StatusBoard:
        if self.engine == "cluster":
            from .. import api

            api.check_state_server(self.config)
            return RedisStatusBoard(self._redis())
        return FileStatusBoard(self.state_dir)

    def _ledger(self, spec: TriggerSpec) -> Ledger:
        if self.engine == "cluster":
            return RedisLedger(spec.name, self._redis())
        return FileLedger(spec.name, self.state_dir)

    def _launcher(self, spec: TriggerSpec) -> Launcher:
        if self.engine == "cluster":
            return ClusterLauncher(self.config, queue=spec.queue, keep_data=spec.keep_data)
        return EmbeddedLauncher(
            self.config,
            markers=self.state_dir / f"{file_name(spec.name)}.started",
            workers=self.workers,
            name=spec.name,
        )

    def _keep_house(self) -> None:
        """Renew ownerships and publish states until the runtime stops."""
        interval = min(PUBLISH_INTERVAL, OWNER_TTL / 3)
        while not self.stopping.wait(interval):
            for trigger in self._triggers:
                try:
                    trigger.ledger.renew()
                except LightflowError as error:
                    logger.error("trigger %s: %s; stopping", trigger.spec.name, error)
                    self.failure = str(error)
                    self.stopping.set()  # the triggers end; the host calls stop()
                    return
                except Exception as error:  # a state server outage: keep trying
                    logger.debug("trigger %s: cannot renew: %s", trigger.spec.name, error)
                self.publish(trigger)


def run_triggers(
    specs: Sequence[TriggerSpec],
    *,
    config: Config,
    engine: str | None = None,
    workers: int | None = None,
    state_dir: Path | None = None,
) -> None:
    """Run triggers in this process until SIGINT or SIGTERM (stopped within 1 s).

    See :class:`TriggerRuntime` for the arguments.

    Raises:
        LightflowError: A trigger cannot start (one line; nothing was started), or
            another process took a trigger over (the others were stopped too).
    """
    runtime = TriggerRuntime(
        specs, config=config, engine=engine, workers=workers, state_dir=state_dir
    )
    signalled: queue.SimpleQueue[int] = queue.SimpleQueue()
    with _signals_to(signalled):
        runtime.start()
        while not runtime.stopping.is_set():  # set by a take-over
            try:
                signalled.get(timeout=STOP_CHECK_INTERVAL)
            except queue.Empty:
                continue
            break
    runtime.stop()
    if runtime.failure:
        raise LightflowError(runtime.failure)


@contextlib.contextmanager
def _signals_to(signalled: queue.SimpleQueue[int]) -> Iterator[None]:
    """While active (main thread only), SIGINT and SIGTERM are put on ``signalled``.

    Only that: a handler runs between two bytecodes of the main thread, which may hold
    the lock of an ``Event`` at that moment (setting one there deadlocked a stopping
    trigger); ``SimpleQueue.put`` is safe there, it takes no lock.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in signals}
    for signum in signals:
        signal.signal(signum, lambda number, _frame: signalled.put(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
