"""Reaching the broker: one connection attempt within a bound, failures in one line.

kombu and Celery report a broker problem in their own ways: a refused password is
``AccessRefused`` from RabbitMQ and a wrapped ``AuthenticationError`` from Redis, an
unreachable host an ``OperationalError`` after retries, a silent host (a firewall
dropping packets) hangs a Redis client for good, and Celery's worker retries at
start for hours. Every Lightflow command that talks to the broker goes through here
instead:

* :func:`broker_connection` builds the kombu connection from the ``celery`` section
  (the client's message, :mod:`lightflow.queue.publish`, and the checks below);
* :func:`check_broker` connects once, bounded by ``celery.broker_connection_timeout``
  (Celery's setting, 4 s by default), and raises one line; asked to wait, it tries
  again and again, logging each try (``lightflow worker start --wait-for-broker``);
* :func:`broker_failure` turns any broker exception into that one line (``None``
  for an exception that is not the broker's), for code that talks to the broker
  through Celery (``worker status``, ``worker stop``).

The URL in every message has its credentials hidden.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import LightflowError
from .app import DEFAULT_BROKER, DEFAULTS

if TYPE_CHECKING:
    from kombu import Connection

    from ..config import Config

#: Celery's default of ``broker_connection_timeout`` (seconds).
CONNECT_TIMEOUT = 4.0
#: Seconds between two tries while waiting for the broker: doubling up to the last.
RETRY_INTERVALS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

logger = logging.getLogger("lightflow.worker")


class BrokerError(LightflowError):
    """The broker cannot be reached, or refused the credentials (one line).

    Attributes:
        refused: The broker answered and refused (credentials, virtual host): trying
            again cannot help.
    """

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


def broker_url(config: Config) -> str:
    """The configured broker URL with its credentials hidden, for messages."""
    from ..config import redact_url

    return redact_url(str(config.celery.get("broker_url", DEFAULT_BROKER)))


def connect_timeout(config: Config) -> float:
    """Seconds one connection attempt may take (``celery.broker_connection_timeout``)."""
    value = config.celery.get("broker_connection_timeout")
    return float(value) if value else CONNECT_TIMEOUT


def broker_connection(config: Config, *, bounded: bool = False) -> Connection:
    """A kombu connection to the configured broker (not connected yet).

    Args:
        config: The configuration (its ``celery`` section).
        bounded: Also bound every socket operation of a Redis broker by the connect
            timeout (unless the section sets one), so that a check of a host that
            accepts connections and then says nothing ends.
    """
    from kombu import Connection

    celery = config.celery
    options = dict(celery.get("broker_transport_options", DEFAULTS["broker_transport_options"]))
    timeout = connect_timeout(config)
    if bounded:
        options.setdefault("socket_connect_timeout", timeout)
        options.setdefault("socket_timeout", timeout)
    return Connection(
        celery.get("broker_url", DEFAULT_BROKER),
        ssl=celery.get("broker_use_ssl") or False,
        transport_options=options,
        login_method=celery.get("broker_login_method"),
        connect_timeout=timeout,
    )


def broker_failure(config: Config, error: BaseException) -> BrokerError | None:
    """``error`` as one line about the broker, or ``None`` if it is not the broker's.

    Credentials refused (RabbitMQ's ``ACCESS_REFUSED``, Redis's ``WRONGPASS`` or
    ``NOAUTH``) and other refusals (an unknown virtual host) are ``refused``; the
    rest (refused connections, timeouts, DNS) mean the broker cannot be reached.
    """
    import amqp.exceptions
    import redis.exceptions
    from kombu.exceptions import KombuError

    if isinstance(error, BrokerError):  # said already, by a check further down
        return error
    causes = _causes(error)
    where = broker_url(config)
    if any(
        isinstance(cause, (amqp.exceptions.AccessRefused, redis.exceptions.AuthenticationError))
        or "WRONGPASS" in str(cause)
        or "NOAUTH" in str(cause)
        for cause in causes
    ):
        return BrokerError(
            f"the broker at {where} refused the credentials: {_reason(error)}; check the "
            "user and password in celery.broker_url",
            refused=True,
        )
    if isinstance(error, amqp.exceptions.IrrecoverableConnectionError):
        return BrokerError(
            f"the broker at {where} refused the connection: {_reason(error)}", refused=True
        )
    broker_errors = (KombuError, amqp.exceptions.AMQPError, OSError, redis.exceptions.RedisError)
    if any(isinstance(cause, broker_errors) for cause in causes):
        return BrokerError(
            f"cannot reach the broker at {where}: {_reason(error)}; check celery.broker_url "
            "and that the broker runs",
            refused=False,
        )
    return None


def check_broker(config: Config, *, wait: bool = False) -> None:
    """Connect to the broker once (bounded by the connect timeout), then let go.

    Args:
        config: The configuration.
        wait: Keep trying while the broker cannot be reached, logging each try (a
            broker that refuses the credentials is never waited for).

    Raises:
        BrokerError: The broker cannot be reached (and ``wait`` is false), or it
            refused the credentials or the virtual host.
    """
    tries = 0
    while True:
        tries += 1
        try:
            _connect_once(config)
            if tries > 1:
                logger.warning("the broker at %s answered (try %d)", broker_url(config), tries)
            return
        except BrokerError as error:
            if error.refused or not wait:
                raise
            pause = RETRY_INTERVALS[min(tries, len(RETRY_INTERVALS)) - 1]
            logger.warning(
                "waiting for the broker (try %d): %s; next try in %g s", tries, error, pause
            )
            time.sleep(pause)


def _connect_once(config: Config) -> None:
    """One bounded connection attempt; every failure is a :class:`BrokerError`."""
    timeout = connect_timeout(config)
    try:
        with broker_connection(config, bounded=True) as connection:
            _bounded(connection.connect, timeout + 1.0)
    except BrokerError:
        raise
    except Exception as error:
        failure = broker_failure(config, error)
        if failure is None:
            raise
        raise failure from None


def _bounded(action: Callable[[], Any], seconds: float) -> None:
    """Run ``action`` in a thread; a :class:`TimeoutError` if it takes longer.

    The transports bound their own sockets, but a step that ignores the timeout
    (a TLS handshake, a name lookup) must not hang a command: the thread is left
    behind (a daemon) and the command goes on to report the broker unreachable.
    """
    import threading

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, name="lightflow-broker-check", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds - 1.0:g} s")
    if outcome[0] is not None:
        raise outcome[0]


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or during (kombu wraps the transport's)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _reason(error: BaseException) -> str:
    """The broker's own words: the message of ``error`` without its class or codes."""
    import amqp.exceptions

    from ..config import redact_url

    if isinstance(error, amqp.exceptions.AMQPError) and getattr(error, "reply_text", None):
        return redact_url(str(error.reply_text)).rstrip(".")
    return redact_url(str(error) or type(error).__name__).rstrip(".")
