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
accepted with a note in :attr:`Config.deprecations`), ``cli``, ``extensions`` and
``logging`` (a :func:`logging.config.dictConfig` dict, applied by
:mod:`lightflow.log_config`). Relative folders in ``workflows`` and ``libraries`` are
resolved against the folder of the file; a file's ``logging`` section replaces the
default one, every other mapping section is merged into the defaults.

No broker is configured by default, so :attr:`Config.broker_configured` is false and
workflows run on the embedded engine; setting ``celery.broker_url`` selects Celery.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

#: What a password is shown as in listings and error messages.
SECRET = "********"
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@/\s]+@")

CONFIG_ENV = "LIGHTFLOW_CONFIG"
CONFIG_NAME = "lightflow.cfg"
ENV_PREFIX = "LIGHTFLOW_"

#: Sections holding a list of folders; every other section is a mapping.
PATH_SECTIONS = ("workflows", "libraries")
#: Mapping sections that a file replaces as a whole instead of merging into the
#: defaults: a dictConfig dict describes one setup, and keys of the default's mixed
#: into the user's would configure what the user never wrote.
WHOLE_SECTIONS = ("logging",)
#: Sections that are read for compatibility only.
#: Keys inside sections that are read for compatibility only.
DEPRECATED_KEYS = {
    ("signal", "polling_time"): "'signal.polling_time' is no longer used: runs are "
    "event-driven; remove it",
}
DEPRECATED_SECTIONS = {
    "graph": "the 'graph' section (workflow_polling_time, dag_polling_time) is no longer "
    "used: runs are event-driven; remove it",
}

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

# Passed through to Celery. Without a broker_url, `lightflow run` and friends use the
# embedded engine (no Redis, no MongoDB needed). Set it to run on Celery workers.
celery:
  # broker_url: redis://localhost:6379/0
  # result_backend: redis://localhost:6379/0
  worker_concurrency: 8
  result_expires: 0
  # Celery's own task events, for tools such as Flower. Lightflow's monitor and status
  # do not need them, and every job then costs the worker three more messages.
  worker_send_task_events: false

# Redis holding run state and signals on the distributed engine. Without a `url` or
# a `host`, the broker is used when it is Redis (else redis://localhost:6379/0).
signal:
  url: null
  host: null
  port: 6379
  password: null
  database: 0
  # Seconds without a heartbeat after which a running task's worker counts as dead
  # and the task is queued again (or fails, if it is not safe to re-run).
  heartbeat_timeout: 15
  # How long the record, events and logs of a finished run stay for `workflow status`
  # and `workflow logs` (90s, 30m, 12h, 7d); workers then delete them, checking once
  # an hour. 0 or null keeps them forever (`lightflow workflow prune` still works).
  keep_finished_runs: 7d

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
    ) -> None:
        self._data = dict(data)
        self.source = source
        self.deprecations = list(deprecations or [])

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
                or a section has the wrong type; or an override names an unknown
                section.
        """
        data = cls._defaults(plugin_defaults)
        deprecations: list[str] = []
        source = _find_file(path, environ)
        if source is not None:
            from_file = _read_file(source)
            for name, value in from_file.items():
                section = _checked_section(name, value, str(source))
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
        _apply_environment(data, environ, deprecations)
        return cls(data, source=source, deprecations=deprecations)

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
        """Celery settings, passed through unchanged."""
        return self._section("celery")

    @property
    def signal(self) -> dict[str, Any]:
        """Redis signal settings (host, port, password, database, polling_time)."""
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
    def logging(self) -> dict[str, Any]:
        """The ``logging.config.dictConfig`` dict."""
        return self._section("logging")

    @property
    def broker_configured(self) -> bool:
        """Whether a Celery broker is set; without one the embedded engine is used."""
        return bool(self.celery.get("broker_url"))

    def section(self, name: str) -> dict[str, Any]:
        """Any mapping section by name (extensions may add their own), ``{}`` if absent."""
        return self._section(name)

    def _section(self, name: str) -> dict[str, Any]:
        value = self._data.get(name)
        return value if isinstance(value, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration in the file's layout (a deep copy)."""
        return copy.deepcopy(self._data)

    def __repr__(self) -> str:
        return f"Config(source={self.source!r})"


def redact_url(text: str) -> str:
    """Hide the passwords of URLs in ``text`` (``redis://:pw@host`` -> ``:********@``)."""
    return _URL_PASSWORD.sub(rf"\g<1>{SECRET}@", text)


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
    data: dict[str, Any], environ: Mapping[str, str], deprecations: list[str]
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
            known = ", ".join(k for k in data if k not in PATH_SECTIONS)
            raise ConfigError(
                f"{variable}: no config section '{section}' takes keys (sections: {known})"
            )
        target = data[section]
        for depth, key in enumerate(keys[1:-1], start=1):
            child = target.get(key)
            if child is None:
                child = target[key] = {}
            elif not isinstance(child, dict):
                path = ".".join(keys[: depth + 1])
                raise ConfigError(f"{variable}: '{path}' is a single value, not a section")
            target = child
        target[keys[-1]] = _scalar(environ[variable])


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
