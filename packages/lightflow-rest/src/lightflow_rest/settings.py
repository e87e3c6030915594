"""The ``extensions.rest`` section of ``lightflow.cfg``: what the server is told.

:data:`DEFAULTS` is the section the extension contributes to the configuration (so
``lightflow config default`` shows it); :func:`load_settings` reads the effective
section into :class:`RestSettings` and checks every key, so a typo is one line naming
the key and the fix, raised as :class:`~lightflow.exceptions.ConfigError` before the
server binds a port. Tokens are read here too: from the file itself (``token``), an
environment variable (``token_env``) or a file (``token_file``), each with a role
(:data:`READ` sees, :data:`OPERATE` also starts and stops).

The server is closed by default: it binds 127.0.0.1, and with ``auth: true`` (the
default) and no token it refuses to start rather than serve nobody or everybody.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightflow.exceptions import ConfigError

#: The role that may read everything.
READ = "read"
#: The role that may also start and stop runs and stop workers.
OPERATE = "operate"
ROLES = (READ, OPERATE)

#: A token shorter than this is refused: it could be guessed.
MIN_TOKEN_LENGTH = 16

#: The ``extensions.rest`` defaults (see docs/rest.md for each key).
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5000,
    "workers": 1,
    "threads": 128,
    "auth": True,
    "tokens": [],
    "max_body_bytes": 1_048_576,
    "cors_origins": [],
    "heartbeat": 15.0,
}

_TOKEN_SOURCES = ("token", "token_env", "token_file")
_TOKEN_KEYS = (*_TOKEN_SOURCES, "role", "name")


@dataclass(frozen=True)
class Token:
    """One accepted bearer token.

    Attributes:
        secret: The token itself.
        role: :data:`READ` or :data:`OPERATE`.
        name: Who holds it, for the server's log (never the secret).
    """

    secret: str = field(repr=False)
    role: str
    name: str


@dataclass(frozen=True)
class RestSettings:
    """The checked ``extensions.rest`` section.

    Attributes:
        host: The address to bind.
        port: The port to bind.
        workers: Server processes.
        threads: Request threads per process; every open event stream holds one.
        auth: Whether requests need a token (``False`` only by explicit choice).
        tokens: The accepted tokens.
        max_body_bytes: Larger request bodies are refused with 413.
        cors_origins: Origins allowed to call the API from a browser (none: no CORS).
        heartbeat: Seconds between comment lines on an idle event stream.
    """

    host: str = DEFAULTS["host"]
    port: int = DEFAULTS["port"]
    workers: int = DEFAULTS["workers"]
    threads: int = DEFAULTS["threads"]
    auth: bool = True
    tokens: tuple[Token, ...] = ()
    max_body_bytes: int = DEFAULTS["max_body_bytes"]
    cors_origins: tuple[str, ...] = ()
    heartbeat: float = DEFAULTS["heartbeat"]


def load_settings(
    section: Mapping[str, Any] | None, environ: Mapping[str, str] = os.environ
) -> RestSettings:
    """Check the ``extensions.rest`` section and read its tokens.

    Args:
        section: The section (missing keys take :data:`DEFAULTS`).
        environ: Where ``token_env`` variables are looked up.

    Raises:
        ConfigError: A key is unknown or has a bad value, a token cannot be read or is
            too short, or auth is on and no token is configured.
    """
    values = {**DEFAULTS, **(section or {})}
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"extensions.rest.{unknown[0]} is not a setting; the settings are: "
            f"{', '.join(DEFAULTS)}"
        )
    host = values["host"]
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(
            f"extensions.rest.host must be an address such as 127.0.0.1, got {host!r}"
        )
    auth = values["auth"]
    if not isinstance(auth, bool):
        raise ConfigError(f"extensions.rest.auth must be true or false, got {auth!r}")
    origins = values["cors_origins"] or []
    if not isinstance(origins, list) or not all(isinstance(o, str) and o for o in origins):
        raise ConfigError(
            "extensions.rest.cors_origins must be a list of origins such as "
            f"https://beamline.example.org, got {origins!r}"
        )
    settings = RestSettings(
        host=host,
        port=_integer(values, "port", 1, 65535),
        workers=_integer(values, "workers", 1, 64),
        threads=_integer(values, "threads", 2, 4096),
        auth=auth,
        tokens=tuple(_token(entry, index, environ) for index, entry in enumerate(_tokens(values))),
        max_body_bytes=_integer(values, "max_body_bytes", 1, 2**31),
        cors_origins=tuple(origins),
        heartbeat=_seconds(values, "heartbeat"),
    )
    if auth and not settings.tokens:
        raise ConfigError(
            "the REST server needs at least one token (extensions.rest.tokens: "
            "[{token_env: LIGHTFLOW_REST_TOKEN, role: operate}]), or auth: false to serve "
            "without authentication"
        )
    return settings


def _integer(values: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"extensions.rest.{key} must be a whole number from {low} to {high}, got {value!r}"
        )
    return value


def _seconds(values: Mapping[str, Any], key: str) -> float:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise ConfigError(
            f"extensions.rest.{key} must be a number of seconds above 0 (at most 3600), "
            f"got {value!r}"
        )
    return float(value)


def _tokens(values: Mapping[str, Any]) -> list[Any]:
    tokens = values["tokens"]
    if tokens is None:
        return []
    if not isinstance(tokens, list):
        raise ConfigError(
            "extensions.rest.tokens must be a list of {token | token_env | token_file, role}, "
            f"got {type(tokens).__name__}"
        )
    return tokens


def _token(entry: Any, index: int, environ: Mapping[str, str]) -> Token:
    """Read tokens[index]: exactly one source, a role, the secret long enough."""
    where = f"extensions.rest.tokens[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping with a token source and a role")
    unknown = sorted(set(entry) - set(_TOKEN_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]} is not a token setting; use: {', '.join(_TOKEN_KEYS)}"
        )
    sources = [key for key in _TOKEN_SOURCES if entry.get(key) is not None]
    if len(sources) != 1:
        raise ConfigError(f"{where} needs exactly one of token, token_env or token_file")
    role = entry.get("role")
    if role not in ROLES:
        raise ConfigError(f"{where}.role must be read or operate, got {role!r}")
    source = sources[0]
    reference = str(entry[source])
    if source == "token":
        secret, origin = reference, "the token"
    elif source == "token_env":
        if reference not in environ:
            raise ConfigError(f"{where}: the environment variable {reference} is not set")
        secret, origin = environ[reference], f"the variable {reference}"
    else:
        path = Path(reference).expanduser()
        try:
            secret = path.read_text().strip()
        except OSError as error:
            raise ConfigError(
                f"{where}: cannot read the token file {path}: {error.strerror or error}"
            ) from None
        origin = f"the file {path}"
    secret = secret.strip()
    if len(secret) < MIN_TOKEN_LENGTH or any(c.isspace() for c in secret):
        raise ConfigError(
            f"{where}: {origin} must hold a token of at least {MIN_TOKEN_LENGTH} characters "
            "without spaces (make one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    name = entry.get("name")
    return Token(secret=secret, role=role, name=str(name) if name else f"token {index + 1}")
