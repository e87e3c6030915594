"""The one configuration model: a YAML file, ``LIGHTFLOW_*`` overrides, defaults.

Where the settings come from, later ones winning:

1. built-in defaults (the commented file :meth:`Config.defaults_yaml` returns, which
   ``lightflow config default`` writes), merged with the defaults extensions contribute
   through the ``lightflow_config_defaults`` hook;
2. one ``lightflow.cfg`` file, the first found of: the path given (``-c FILE``), the
   ``LIGHTFLOW_CONFIG`` environment variable, ``./lightflow.cfg``,
   ``$XDG_CONFIG_HOME/lightflow/lightflow.cfg`` (``~/.config/lightflow/lightflow.cfg``)
   and, as in 1.x, ``~/lightflow.cfg``. Without any, the defaults stand alone;
3. environment overrides: ``LIGHTFLOW_<SECTION>__<KEY>=value`` (deeper keys joined by
   ``__`` too, e.g. ``LIGHTFLOW_STORE__HOST=db1``, ``LIGHTFLOW_CELERY__BROKER_URL=...``),
   values read as YAML scalars (``27017`` is a number, ``true`` a boolean, ``null``
   None); and ``LIGHTFLOW_WORKFLOWS`` / ``LIGHTFLOW_LIBRARIES`` holding folders joined
   by ``os.pathsep``, which replace the lists from the file.

The file layout is the 1.x one, unchanged: sections ``workflows``, ``libraries``,
``celery`` (passed through to Celery), ``signal``, ``store``, ``graph`` (no longer used:
accepted with a note in :attr:`Config.deprecations`), ``cli``, ``extensions``,
``triggers`` (new: see :mod:`lightflow.triggers.settings`) and ``logging`` (a
:func:`logging.config.dictConfig` dict, applied by :mod:`lightflow.log_config`).
Relative folders in ``workflows`` and ``libraries`` are resolved against the folder of
the file; a file's ``logging`` section replaces the default one, every other mapping
section is merged into the defaults.

What a file or an override sets is checked when :meth:`Config.load` reads it, so a
typo is one error line naming the file or the variable, never a silent default: an
unknown section (sections that installed extensions contribute defaults for count as
known), an unknown ``signal`` key, a ``signal`` value of the wrong type or range, or a
``celery.broker_url`` that is not a URL at all (:func:`check_broker_url`).
The ``celery`` section's keys are checked against Celery's own list of settings (and
the types of its number and boolean settings) when Celery is loaded, by the first
read of :attr:`Config.celery` after that: importing Celery costs more than a client
command such as ``workflow start`` takes as a whole. The ``store`` keys are checked
against the store (:func:`lightflow.queue.driver.store_settings`).
:meth:`Config.from_dict`, for code and tests, checks only the sections' types.

No broker is configured by default, so :attr:`Config.broker_configured` is false and
workflows run on the embedded engine; setting ``celery.broker_url`` selects Celery.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

#: What a password is shown as in listings and error messages.
SECRET = "********"
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@/\s]+@")
# Words that make a setting's key name a secret, whose value is never shown.
_SECRET_KEY_WORDS = ("password", "passwd", "secret", "token")
# A password in a URL's query string (redis-py takes ``?password=``), or a token.
_QUERY_SECRET = re.compile(r"([?&;][\w.-]*(?:pass(?:word|wd)?|secret|token)=)[^&;#\s]+", re.I)
# What a broker URL looks like to kombu: TRANSPORT://..., several joined by ';'.
_BROKER_URL = re.compile(r"[a-zA-Z][\w+.-]*://\S*")
_BROKER_URL_FORM = "TRANSPORT://[USER:PASSWORD@]HOST[:PORT]/[DB or VHOST]"
#: What kombu reads from the URL itself and so refuses in its query as well.
_BROKER_URL_PARTS = ("transport", "hostname", "port", "userid", "password", "virtual_host")

CONFIG_ENV = "LIGHTFLOW_CONFIG"
CONFIG_NAME = "lightflow.cfg"
ENV_PREFIX = "LIGHTFLOW_"

#: Sections holding a list of folders; every other section is a mapping.
PATH_SECTIONS = ("workflows", "libraries")
#: Mapping sections that a file replaces as a whole instead of merging into the
#: defaults: a dictConfig dict describes one setup, and keys of the default's mixed
#: into the user's would configure what the user never wrote.
WHOLE_SECTIONS = ("logging",)
#: Keys inside sections that are read for compatibility only.
DEPRECATED_KEYS = {
    ("signal", "polling_time"): "'signal.polling_time' is no longer used: runs are "
    "event-driven; remove it",
}
#: Sections that are read for compatibility only.
DEPRECATED_SECTIONS = {
    "graph": "the 'graph' section (workflow_polling_time, dag_polling_time) is no longer "
    "used: runs are event-driven; remove it",
}
#: The settings of the ``signal`` section: 1.x's ``host``, ``port``, ``password`` and
#: ``database`` (and ``polling_time``, deprecated), then ``url``, ``ssl``,
#: ``heartbeat_timeout``, ``keep_finished_runs`` and ``stop_grace``. Any other key is
#: an error.
SIGNAL_KEYS = (
    "url",
    "host",
    "port",
    "password",
    "database",
    "ssl",
    "heartbeat_timeout",
    "keep_finished_runs",
    "stop_grace",
)
#: The URL schemes redis-py connects with (``signal.url``).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Celery settings whose type Lightflow knows better than ``celery.app.defaults``
#: (which types ``worker_concurrency`` as "any", though a worker needs a number).
_CELERY_TYPES = {"worker_concurrency": "int"}
#: Celery settings of type bool that also take a mapping (of SSL options).
_CELERY_BOOL_OR_MAPPING = ("broker_use_ssl",)
_CELERY_SETTINGS_DOCS = "https://docs.celeryq.dev/en/stable/userguide/configuration.html"

# The built-in defaults ARE this text (parsed), so the file `config default` writes
# and the defaults used without a file cannot drift apart. `{extensions}` is replaced
# by the extensions section, which installed extensions contribute to.
_DEFAULT_FILE = """\
# Lightflow configuration (lightflow.cfg).
#
# Looked up in this order: the file given with `lightflow -c FILE`, the
# LIGHTFLOW_CONFIG environment variable, ./lightflow.cfg,
# ~/.config/lightflow/lightflow.cfg, ~/lightflow.cfg. Any setting can be overridden
# with an environment variable LIGHTFLOW_<SECTION>__<KEY>, for example
# LIGHTFLOW_STORE__HOST=db1 or LIGHTFLOW_CELERY__BROKER_URL=redis://host:6379/0.

# Folders holding workflow files, searched for workflow names. Relative folders are
# relative to this file. Override with LIGHTFLOW_WORKFLOWS=folder1:folder2.
workflows: []
#  - ./examples

# Folders put on the Python path so that workflows can import shared code.
libraries: []

# Passed through to Celery. `lightflow run` never needs it: it runs a workflow in its
# own process (no Redis, no MongoDB). Set broker_url to run workflows on Celery
# workers: `workflow start`, `worker start` and the other cluster commands refuse to
# run without it.
celery:
  # broker_url: redis://localhost:6379/0
  # result_backend: redis://localhost:6379/0
  worker_concurrency: 8
  result_expires: 0
  # Celery's own task events, for tools such as Flower. Lightflow's monitor and status
  # do not need them, and every job then costs the worker three more messages.
  worker_send_task_events: false

# Redis holding run state and signals on the distributed engine. Without a `url` or
# a `host`, the broker is used when it is Redis; with another broker (RabbitMQ) the
# cluster commands refuse to run until this section names the Redis server.
signal:
  url: null
  host: null
  port: 6379
  password: null
  database: 0
  # Seconds after which a worker process not marked alive by its worker counts as
  # dead: its tasks are queued again (or fail, if not safe to re-run) and the jobs it
  # held are sent again, within about this time of its death. The mark comes from the
  # worker's main process, which runs no task code, so a busy task never delays it.
  heartbeat_timeout: 3
  # How long the record, events and logs of a finished run stay for `workflow status`
  # and `workflow logs` (90s, 30m, 12h, 7d); workers then delete them, checking once
  # an hour. 0 or null keeps them forever (`lightflow workflow prune` still works).
  keep_finished_runs: 7d
  # Seconds `workflow stop` gives running tasks to end once they see is_stopped; a task
  # still running then is recorded stopped and its worker terminates its process
  # (`workflow stop --grace SECONDS` for one stop, `--force` for none).
  stop_grace: 10

# MongoDB holding the run data. A `uri` (mongodb://...) replaces host and port.
store:
  host: localhost
  port: 27017
  database: lightflow
  username: null
  password: null
  auth_source: admin
  auth_mechanism: null
  uri: null

# Command line settings.
cli:
  time_format: '%Y-%m-%d %H:%M:%S'

# Settings of installed extensions, one entry per extension.
{extensions}

# Triggers: each starts a workflow when something happens (a file lands in a folder,
# a PV changes), run by `lightflow triggers run` without holding a worker. One entry
# per trigger, by name: `source` is a kind an installed extension provides, the other
# keys are described in docs/triggers.md. For example:
#   detector:
#     source: folder
#     path: /data/detector
#     workflow: compress
#     aggregate: 5
triggers: {{}}

# Python logging (a logging.config.dictConfig dict), applied by `lightflow run`,
# `worker start`, `workflow start --wait` and `monitor` before they start work. A
# logging section in this file replaces this one as a whole (it needs its own
# `version: 1`); disable_existing_loggers is false unless set.
#
# This default configures nothing on purpose, so the console shows what it shows
# without the section: `lightflow run` prints the tasks' warnings as they are
# (Python's fallback) and a worker logs through Celery's own console handler, which
# Celery adds only when the root logger has none. A console handler on the root
# logger here would print every INFO line of tasks and libraries on stderr under
# `lightflow run`, and replace Celery's format on workers.
logging:
  version: 1
  disable_existing_loggers: false
  # For example, Lightflow's own log also in a file (on workers with the lines of
  # tasks, tagged [run/dag/task], that log through a `lightflow.*` logger):
  # formatters:
  #   plain:
  #     format: '%(asctime)s %(levelname)s %(name)s: %(message)s'
  # handlers:
  #   file:
  #     class: logging.FileHandler
  #     filename: /var/log/lightflow/lightflow.log
  #     formatter: plain
  # loggers:
  #   lightflow:
  #     handlers: [file]
  #     level: INFO
"""


class Config:
    """The effective configuration.

    Attributes:
        workflows: Folders searched for workflow files (absolute paths).
        libraries: Folders put on ``sys.path`` for workflows (absolute paths).
        celery: Celery settings, passed through.
        signal: Redis signal settings.
        store: MongoDB store settings.
        cli: Command line settings (``time_format``).
        extensions: Settings per extension name.
        logging: A ``dictConfig`` dict.
        source: The file the configuration was read from, ``None`` for defaults only.
        deprecations: One-line notes about settings that are accepted but unused.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        source: Path | None = None,
        deprecations: list[str] | None = None,
        celery_origins: Mapping[str, str] | None = None,
    ) -> None:
        self._data = dict(data)
        self.source = source
        self.deprecations = list(deprecations or [])
        # Where each celery key was set (file or variable), for the check that runs
        # once Celery is loaded; None: not checked (from_dict, or checked already).
        self._celery_origins = dict(celery_origins) if celery_origins is not None else None

    # -- loading ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] = os.environ,
        *,
        plugin_defaults: bool = True,
    ) -> Config:
        """Read the configuration: defaults, then a file, then environment overrides.

        Args:
            path: The file to read; without it the file is looked up (see the module
                documentation) and the defaults stand alone if there is none.
            environ: The environment holding ``LIGHTFLOW_*`` overrides.
            plugin_defaults: Merge the defaults that installed extensions contribute.

        Raises:
            ConfigError: The file is missing (when named), unreadable, not valid YAML,
                or a section has the wrong type; a section (of the file or of an
                override) is unknown; or a ``signal`` key is unknown or its value
                invalid.
        """
        data = cls._defaults(plugin_defaults)
        deprecations: list[str] = []
        celery_origins: dict[str, str] = {}
        source = _find_file(path, environ)
        if source is not None:
            from_file = _read_file(source)
            for name, value in from_file.items():
                section = _checked_section(name, value, str(source))
                if name not in data and name not in DEPRECATED_SECTIONS:
                    raise ConfigError(f"{source}: {_unknown_section(name, data)}")
                if name == "signal":
                    for key, setting in section.items():
                        check_signal_setting(key, setting, str(source))
                elif name == "celery":
                    celery_origins.update(dict.fromkeys(section, str(source)))
                    check_broker_url(section.get("broker_url"), str(source))
                if name in PATH_SECTIONS:
                    data[name] = _resolve_paths(section, source.parent)
                elif name in WHOLE_SECTIONS:
                    data[name] = section
                elif name in DEPRECATED_SECTIONS:
                    deprecations.append(f"{source}: {DEPRECATED_SECTIONS[name]}")
                    data[name] = section
                else:
                    data[name] = _merged(data.get(name), section)
                    deprecations.extend(
                        f"{source}: {note}"
                        for (where, key), note in DEPRECATED_KEYS.items()
                        if where == name and isinstance(section, dict) and key in section
                    )
        _apply_environment(data, environ, deprecations, celery_origins)
        return cls(data, source=source, deprecations=deprecations, celery_origins=celery_origins)

    @classmethod
    def from_dict(
        cls,
        values: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        plugin_defaults: bool = False,
    ) -> Config:
        """Build a configuration from a dict laid out like the file (for code and tests).

        Relative folders resolve against ``base_dir`` (default: the current folder).
        Only the sections' types are checked, not their keys and values as
        :meth:`load` checks them.

        Raises:
            ConfigError: A section has the wrong type.
        """
        data = cls._defaults(plugin_defaults)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        for name, value in values.items():
            section = _checked_section(name, value, "configuration")
            if name in PATH_SECTIONS:
                data[name] = _resolve_paths(section, base)
            elif name in WHOLE_SECTIONS:
                data[name] = copy.deepcopy(section)
            else:
                data[name] = _merged(data.get(name), section)
        return cls(data)

    @classmethod
    def _defaults(cls, plugin_defaults: bool) -> dict[str, Any]:
        import yaml

        data: dict[str, Any] = yaml.safe_load(_DEFAULT_FILE.format(extensions="extensions: {}"))
        if plugin_defaults:
            for name, section in _plugin_config_defaults().items():
                data[name] = _merged(section, data.get(name))
        return data

    @staticmethod
    def defaults_yaml(plugin_defaults: bool = True) -> str:
        """The commented default ``lightflow.cfg`` (what ``config default`` writes).

        With ``plugin_defaults``, the ``extensions`` section lists the defaults that
        installed extensions contribute.
        """
        extensions: dict[str, Any] = {}
        if plugin_defaults:
            extensions = _plugin_config_defaults().get("extensions", {})
        if not extensions:
            return _DEFAULT_FILE.format(extensions="extensions: {}")
        import yaml

        text = yaml.safe_dump({"extensions": extensions}, default_flow_style=False, sort_keys=False)
        return _DEFAULT_FILE.format(extensions=text.rstrip("\n"))

    # -- the sections -----------------------------------------------------------------
    @property
    def workflows(self) -> list[Path]:
        """Folders searched for workflow files."""
        return [Path(p) for p in self._data.get("workflows") or []]

    @property
    def libraries(self) -> list[Path]:
        """Folders put on the Python path for workflows."""
        return [Path(p) for p in self._data.get("libraries") or []]

    @property
    def celery(self) -> dict[str, Any]:
        """Celery settings, passed through unchanged.

        Of a configuration that :meth:`load` read, the first read once Celery is
        imported checks the settings against Celery's (:func:`check_celery_settings`):
        the Celery app is built from them right after that import, and a client
        command that never imports Celery does not pay for the check.

        Raises:
            ConfigError: A setting is not Celery's, or has the wrong type.
        """
        section = self._section("celery")
        if self._celery_origins is not None and "celery" in sys.modules:
            check_celery_settings(section, self._celery_origins)
            self._celery_origins = None
        return section

    @property
    def signal(self) -> dict[str, Any]:
        """Redis state server settings (:data:`SIGNAL_KEYS`)."""
        return self._section("signal")

    @property
    def store(self) -> dict[str, Any]:
        """MongoDB store settings (host, port, database, username, password, uri...)."""
        return self._section("store")

    @property
    def cli(self) -> dict[str, Any]:
        """Command line settings."""
        return self._section("cli")

    @property
    def extensions(self) -> dict[str, Any]:
        """Settings of extensions, by extension name."""
        return self._section("extensions")

    @property
    def triggers(self) -> dict[str, Any]:
        """Triggers declared by name (:mod:`lightflow.triggers.settings`)."""
        return self._section("triggers")

    @property
    def logging(self) -> dict[str, Any]:
        """The ``logging.config.dictConfig`` dict."""
        return self._section("logging")

    @property
    def broker_configured(self) -> bool:
        """Whether a Celery broker is set; without one the embedded engine is used."""
        return bool(self.celery.get("broker_url"))

    @property
    def file_name(self) -> str:
        """The file to name in advice ("set X in FILE"): the one read, else ``lightflow.cfg``.

        So that a user who gave ``-c other.cfg`` is not sent to edit another file.
        """
        return str(self.source) if self.source is not None else CONFIG_NAME

    def section(self, name: str) -> dict[str, Any]:
        """Any mapping section by name (extensions may add their own), ``{}`` if absent."""
        return self._section(name)

    def _section(self, name: str) -> dict[str, Any]:
        value = self._data.get(name)
        return value if isinstance(value, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration in the file's layout (a deep copy)."""
        return copy.deepcopy(self._data)

    def redacted(self) -> dict[str, Any]:
        """:meth:`to_dict` with secrets hidden, for showing: ``config list``, the REST API.

        Every value of a key naming a password, secret or token (``password``,
        ``api_token``, ``client_secret``...) and the credentials in every URL are
        :data:`SECRET`.
        """
        return _redacted(self._data)

    def __repr__(self) -> str:
        return f"Config(source={self.source!r})"


def _redacted(value: Any, key: str = "") -> Any:
    name = key.lower()
    # ``token_env`` and ``token_file`` say where a secret is kept, not what it is.
    secret = any(word in name for word in _SECRET_KEY_WORDS) and not name.endswith(
        ("_env", "_file")
    )
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(item, key) for item in value]
    if secret and value not in (None, ""):
        return SECRET
    return redact_url(value) if isinstance(value, str) else value


def redact_url(text: str) -> str:
    """Hide the credentials of URLs in ``text``, wherever they sit in the URL.

    The password of the user part (``redis://:pw@host`` -> ``:********@``) and the
    values of query settings naming a password, secret or token
    (``redis://host/1?password=pw`` -> ``?password=********``), which redis-py and
    others accept.
    """
    text = _URL_PASSWORD.sub(rf"\g<1>{SECRET}@", text)
    return _QUERY_SECRET.sub(rf"\g<1>{SECRET}", text)


def default_search_paths(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The files looked for, in order, when neither a path nor LIGHTFLOW_CONFIG is given."""
    home = Path(environ.get("HOME") or Path.home())
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [Path.cwd() / CONFIG_NAME, config_home / "lightflow" / CONFIG_NAME, home / CONFIG_NAME]


def _find_file(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if path is not None and str(path) != "":
        return Path(path).expanduser().absolute()
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser().absolute()
    for candidate in default_search_paths(environ):
        if candidate.is_file():
            return candidate
    return None


def _read_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file is a mapping of sections (workflows:, celery:, ...), "
            f"got {_type_name(data)}"
        )
    return data


def check_signal_setting(key: Any, value: Any, where: str) -> None:
    """Check one setting of the ``signal`` section as a file or an override gives it.

    ``keep_finished_runs`` is checked by :func:`finished_run_retention`,
    the function that reads it; ``polling_time`` (1.x, no longer used) takes anything.

    Args:
        key: The setting's name.
        value: Its value.
        where: The file or the variable that set it, for the message: an unknown key
            is reported as ``WHERE: unknown ...``, a bad value as
            ``signal.KEY must be ..., got VALUE (in WHERE)``.

    Raises:
        ConfigError: ``key`` is no signal setting, or ``value`` is not one for it.
    """
    if ("signal", key) in DEPRECATED_KEYS:
        return
    if key not in SIGNAL_KEYS:
        raise ConfigError(
            f"{where}: unknown signal setting {_quoted(key)}{_did_you_mean(key, SIGNAL_KEYS)}; "
            f"the signal section takes: {', '.join(SIGNAL_KEYS)}"
        )
    if key == "keep_finished_runs":
        try:
            finished_run_retention(Config({"signal": {key: value}}))
        except ConfigError as error:
            raise ConfigError(f"{error} (in {where})") from None
        return
    expected = _signal_problem(key, value)
    if expected is not None:
        raise ConfigError(f"signal.{key} must be {expected}, got {_shown(value)} (in {where})")


def check_broker_url(value: Any, where: str) -> None:
    """Check that ``celery.broker_url`` is a URL (or URLs joined by ``;``) at all.

    A typo such as ``redis//host`` would otherwise reach kombu as a host name, and the
    state server's lookup would call the broker "not Redis": the user must hear that
    the URL is malformed. Which transports exist is kombu's to say, on connecting.

    Raises:
        ConfigError: ``value`` is set and is not such a URL; the message names
            ``where`` (the file or the variable).
    """
    if value is None or value == "":  # no broker: the embedded engine
        return
    urls = value if isinstance(value, list) else [value]
    for url in urls:
        if not isinstance(url, str):
            raise ConfigError(
                f"celery.broker_url must be a URL such as redis://host:6379/0, got "
                f"{_shown(url)} (in {where})"
            )
        for part in url.split(";"):
            if not _BROKER_URL.fullmatch(part.strip()):
                raise ConfigError(
                    f"celery.broker_url {_shown(part.strip())} is a malformed URL: write "
                    f"{_BROKER_URL_FORM}, e.g. redis://host:6379/0 or "
                    f"amqp://user:password@host:5672/vhost (in {where})"
                )
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(part.strip()).query)
            clash = sorted(set(query) & set(_BROKER_URL_PARTS))
            if clash:  # kombu's parse_url fails on them with a TypeError
                raise ConfigError(
                    f"celery.broker_url cannot give '{clash[0]}' in its query (?{clash[0]}=): "
                    f"the broker takes it in the URL itself, {_BROKER_URL_FORM} (in {where})"
                )


def _signal_problem(key: str, value: Any) -> str | None:
    """What ``signal.<key>`` must be when ``value`` is not that, else ``None``."""
    if key == "url":
        if value is None or value == "":  # unset: host/port, or the broker
            return None
        if isinstance(value, str) and value.lower().startswith(REDIS_SCHEMES):
            return None
        return "a Redis URL starting with redis://, rediss:// (TLS) or unix:// (a socket)"
    if key == "host":
        return None if value is None or isinstance(value, str) else "a host name"
    if key == "port":
        port = _whole_number(value)
        return None if port is not None and 0 < port < 65536 else "a port number (1 to 65535)"
    if key == "database":
        database = _whole_number(value)
        return None if database is not None and database >= 0 else "a database number (0 or more)"
    if key == "password":
        return None if value is None or _is_number(value) or isinstance(value, str) else "text"
    if key == "ssl":
        return None if value is None or isinstance(value, bool) else "true or false"
    if key == "heartbeat_timeout":
        if value is None or (_is_number(value) and math.isfinite(value) and value > 0):
            return None
        return "a positive number of seconds (default 3)"
    if key == "stop_grace":
        if value is None or (_is_number(value) and math.isfinite(value) and value >= 0):
            return None
        return "a number of seconds, 0 or more (default 10)"
    return None


def check_celery_settings(
    settings: Mapping[str, Any], origins: Mapping[str, str] | None = None
) -> None:
    """Check ``celery`` settings against Celery's own list, ``celery.app.defaults``.

    A name is one of Celery's settings, in the current (lowercase) spelling or in the
    old uppercase one Celery still accepts (``CELERYD_CONCURRENCY``). The value of a
    number or boolean setting must have that type; ``None`` leaves a setting at
    Celery's default. Imports Celery: :attr:`Config.celery` calls this only once
    Celery is loaded.

    Args:
        settings: The celery section.
        origins: The file or the variable that set each key, for the message.

    Raises:
        ConfigError: A name is not a Celery setting, or a value has the wrong type.
    """
    from celery.app import defaults

    types: dict[str, Any] = {
        name: option.type for name, option in defaults.flatten(defaults.NAMESPACES)
    }
    types.update(_CELERY_TYPES)
    renamed: Mapping[str, str] = getattr(defaults, "_TO_NEW_KEY", {})  # old name: new name
    origins = origins or {}
    for key, value in settings.items():
        where = origins.get(key, "configuration")
        name = renamed.get(key, key)
        if name not in types:
            choices = [*types, *renamed]
            raise ConfigError(
                f"{where}: {_quoted(key)} is not a Celery setting"
                f"{_did_you_mean(key, choices)}; the celery section takes Celery's "
                f"settings, listed at {_CELERY_SETTINGS_DOCS}"
            )
        kind = types[name] if isinstance(types[name], str) else types[name].__name__
        expected = _celery_problem(name, kind, value)
        if expected is not None:
            raise ConfigError(f"celery.{key} must be {expected}, got {_shown(value)} (in {where})")


def _celery_problem(name: str, kind: str, value: Any) -> str | None:
    """What Celery setting ``name`` of type ``kind`` must be when ``value`` is not that."""
    if value is None:
        return None
    if kind == "bool":
        if name in _CELERY_BOOL_OR_MAPPING:
            return None if isinstance(value, (bool, dict)) else "true, false or a mapping"
        return None if isinstance(value, bool) else "true or false"
    if kind == "int":
        whole = _is_number(value) and float(value).is_integer()
        return None if whole else "an integer"
    if kind == "float":
        return None if _is_number(value) else "a number"
    return None


def _unknown_section(name: Any, data: Mapping[str, Any]) -> str:
    known = [section for section in data if section not in DEPRECATED_SECTIONS]
    return (
        f"unknown section {_quoted(name)}{_did_you_mean(name, known)}; "
        f"the sections are: {', '.join(known)}"
    )


def _did_you_mean(name: Any, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``''``."""
    import difflib

    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _quoted(name: Any) -> str:
    return f"'{name}'" if isinstance(name, str) else repr(name)


def _shown(value: Any) -> str:
    """A value for an error message: text quoted (URL passwords hidden), YAML words."""
    if isinstance(value, str):
        return repr(redact_url(value))
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if _is_number(value):
        return repr(value)
    return _type_name(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole_number(value: Any) -> int | None:
    """``value`` as an int if it is one (or digits, as quoted YAML gives), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        return int(value)
    return None


def _checked_section(name: Any, value: Any, where: str) -> Any:
    """Check a section's type; ``None`` (an empty section) counts as empty."""
    if not isinstance(name, str):
        raise ConfigError(f"{where}: section names are strings, got {name!r}")
    if name in PATH_SECTIONS:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise ConfigError(
                f"{where}: section '{name}' must be a list of folders, got {_type_name(value)}"
            )
        return value
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: section '{name}' must be a mapping of settings, got {_type_name(value)}"
        )
    return value


def _resolve_paths(paths: list[str], base: Path) -> list[str]:
    resolved = []
    for entry in paths:
        path = Path(entry).expanduser()
        resolved.append(str(path if path.is_absolute() else (base / path).resolve()))
    return resolved


def _merged(base: Any, update: Any) -> Any:
    """``update`` merged into a copy of ``base``, recursively for mappings."""
    if not isinstance(base, dict) or not isinstance(update, dict):
        return copy.deepcopy(update)
    result = copy.deepcopy(base)
    for key, value in update.items():
        result[key] = _merged(result.get(key), value)
    return result


def _apply_environment(
    data: dict[str, Any],
    environ: Mapping[str, str],
    deprecations: list[str],
    celery_origins: dict[str, str],
) -> None:
    for section in PATH_SECTIONS:
        value = environ.get(f"{ENV_PREFIX}{section.upper()}")
        if value is not None:
            data[section] = _resolve_paths([p for p in value.split(os.pathsep) if p], Path.cwd())
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        keys = [k.lower() for k in variable[len(ENV_PREFIX) :].split("__")]
        section = keys[0]
        if not all(keys):
            raise ConfigError(f"{variable}: empty name part; write LIGHTFLOW_SECTION__KEY")
        if section in DEPRECATED_SECTIONS:
            deprecations.append(f"{variable}: {DEPRECATED_SECTIONS[section]}")
            data.setdefault(section, {})
        if section in PATH_SECTIONS or section not in data:
            known = [k for k in data if k not in PATH_SECTIONS]
            raise ConfigError(
                f"{variable}: no config section '{section}' takes keys"
                f"{_did_you_mean(section, known)}; sections: {', '.join(known)}"
            )
        value = _scalar(environ[variable])
        if section == "signal":
            if len(keys) > 2:
                raise ConfigError(
                    f"{variable}: signal settings are single values; write LIGHTFLOW_SIGNAL__<KEY>"
                )
            check_signal_setting(keys[1], value, variable)
        elif section == "celery":
            celery_origins[keys[1]] = variable
            if keys[1:] == ["broker_url"]:
                check_broker_url(value, variable)
        if (section, keys[1]) in DEPRECATED_KEYS:
            deprecations.append(f"{variable}: {DEPRECATED_KEYS[(section, keys[1])]}")
        target = data[section]
        for depth, key in enumerate(keys[1:-1], start=1):
            child = target.get(key)
            if child is None:
                child = target[key] = {}
            elif not isinstance(child, dict):
                path = ".".join(keys[: depth + 1])
                raise ConfigError(f"{variable}: '{path}' is a single value, not a section")
            target = child
        target[keys[-1]] = value


def _scalar(text: str) -> Any:
    """A YAML scalar (number, boolean, null) or the text itself."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, (dict, list)) or (
        value is None and text.strip() not in ("", "~", "null", "Null", "NULL")
    ):
        return text
    return value


def _type_name(value: Any) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
    }
    return names.get(type(value), type(value).__name__)


def _plugin_config_defaults() -> dict[str, Any]:
    from .plugins.manager import config_defaults

    return config_defaults()


# -- durations and run retention -------------------------------------------------------
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw])\s*", re.IGNORECASE)
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """Seconds in a duration written as a number and a unit: ``90s``, ``30m``, ``12h``, ``7d``.

    The unit is required (``7`` alone could mean seven days as easily as seven
    seconds), except for ``0``, which is zero whatever the unit.

    Raises:
        ConfigError: ``text`` is not such a duration.
    """
    match = _DURATION.fullmatch(text)
    if match is not None:
        return float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2).lower()]
    if text.strip() == "0":
        return 0.0
    raise ConfigError(
        f"'{text}' is not a duration: write a number and a unit (s, m, h, d or w), "
        "e.g. 90s, 30m, 12h or 7d"
    )


def finished_run_retention(config: Config) -> float | None:
    """Seconds a finished run is kept (``signal.keep_finished_runs``); ``None``: forever.

    A number is seconds; text is a duration (``7d``); ``0``, ``null`` or ``false`` turn
    automatic pruning off.

    Raises:
        ConfigError: The value is neither, or negative. ``Config.load`` checks a value
            that a file or an override sets with this function, so every command
            refuses a typo; it is checked again where it is read (the worker at start,
            ``workflow prune``) for configurations built otherwise.
    """
    value = config.signal.get("keep_finished_runs")
    if value is None or value is False:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ConfigError as error:
            raise ConfigError(
                f"signal.keep_finished_runs: {error}; or 0 or null to keep finished runs forever"
            ) from None
    else:
        raise ConfigError(f"signal.keep_finished_runs must be a duration such as 7d, got {value!r}")
    if seconds < 0:
        raise ConfigError(f"signal.keep_finished_runs must not be negative, got {value!r}")
    return seconds or None
