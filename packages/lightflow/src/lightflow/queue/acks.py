"""Acknowledging a job whose broker connection was lost while it ran.

Jobs are acknowledged late, when they end. If the worker's connection to a Redis
broker drops meanwhile (a Redis restart), Celery reconnects on a new connection, but
the job's message still belongs to the old one, and kombu's Redis transport then
fails to acknowledge (or reject) it with ``AttributeError: 'NoneType' object has no
attribute 'hostname'`` instead of a connection error. Celery does not expect that
error: the worker dies of an "Unrecoverable error" (the upstream class of bug of
celery/kombu #970 and #582), and runs whose workers all died hang.

Little needs to be done with such a message: the broker still holds it as
unacknowledged and delivers it again after the visibility timeout, and a job
delivered again is dropped (or, if its work was not recorded, run) like any repeat.
So :class:`JobRequest` leaves an acknowledgement undone, says so in one line, and
sends a job meant to go back to its queue (its work could not be recorded) back at
once through a new connection, where it can. Every Lightflow job
is of the task class :class:`Job` (``create_app`` makes it the app's ``task_cls``),
whose requests are :class:`JobRequest`; on RabbitMQ, whose channels raise connection
errors that Celery handles itself, nothing changes.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.worker.request import Request

logger = logging.getLogger("lightflow.worker")


def _connection_lost(request: Request) -> bool:
    """Whether the message of ``request`` came on a kombu virtual channel (Redis) whose
    connection has been closed since (a reconnect replaced it)."""
    from kombu.transport import virtual

    channel = getattr(request.message, "channel", None)
    if not isinstance(channel, virtual.Channel):
        return False
    return getattr(getattr(channel, "connection", None), "client", None) is None


class JobRequest(Request):
    """A job's request that leaves a message of a lost connection to the broker."""

    def acknowledge(self) -> None:
        if not self.acknowledged and _connection_lost(self):
            self._leave("acknowledged")
            return
        super().acknowledge()

    def reject(self, requeue: bool = False) -> None:
        if not self.acknowledged and _connection_lost(self):
            if not (requeue and self._requeue_on_a_new_connection()):
                self._leave("sent back")
            return
        super().reject(requeue=requeue)

    def _requeue_on_a_new_connection(self) -> bool:
        """Put the message back on its queue through a connection of its own.

        Redis keeps the unacknowledged messages of every connection in one place,
        so any connection can send one back; waiting for the visibility timeout
        instead would hold the run up for a minute. ``False`` if that fails too.
        """
        try:
            with self.task.app.connection_for_write() as connection:
                connection.default_channel.qos.restore_by_tag(
                    self.message.delivery_tag, leftmost=True
                )
        except Exception as error:  # the broker is still away: the timeout will do
            logger.debug("requeueing job %s failed: %r", self.id, error)
            return False
        self.acknowledged = True
        logger.warning(
            "job %s ended after its connection to the broker was lost: sent back to its "
            "queue on a new connection",
            self.id,
        )
        return True

    def _leave(self, what: str) -> None:
        self.acknowledged = True
        logger.warning(
            "job %s ended after its connection to the broker was lost: not %s; the "
            "broker delivers it again, and the repeat is dropped or run as needed",
            self.id,
            what,
        )


class Job(Task):
    """The task class of Lightflow's jobs: their requests are :class:`JobRequest`."""

    Request: Any = f"{__name__}:JobRequest"
