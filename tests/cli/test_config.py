"""The configuration model: lookup, the 1.x layout, overrides, errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from lightflow.config import Config
from lightflow.exceptions import ConfigError
from lightflow.plugins import hookimpl
from lightflow.plugins.manager import get_plugin_manager

# The default lightflow.cfg of Lightflow 1.x, as users have it.
ONE_X_CFG = """\
workflows:
  - ./workflows
libraries: []
celery:
  broker_url: redis://localhost:6379/0
  result_backend: redis://localhost:6379/0
  timezone: Australia/Melbourne
  enable_utc: True
  worker_concurrency: 8
  result_expires: 0
  worker_send_task_events: True
signal:
  host: localhost
  port: 6379
  database: 0
  polling_time: 0.5
store:
  host: localhost
  port: 27017
  database: lightflow
graph:
  workflow_polling_time: 0.5
  dag_polling_time: 0.5
cli:
  time_format: '%d/%m/%Y %H:%M:%S'
extensions: {}
logging:
  version: 1
  disable_existing_loggers: false
  handlers:
    console:
      class: logging.StreamHandler
      level: INFO
  loggers:
    celery:
      handlers:
        - console
      level: INFO
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home folder and working folder, so no real config file is found."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def env(home: Path, **values: str) -> dict[str, str]:
    return {"HOME": str(home), **values}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_a_file_select_the_embedded_engine(home: Path) -> None:
    config = Config.load(environ=env(home))
    assert config.source is None
    assert config.workflows == [] and config.libraries == []
    assert not config.broker_configured
    assert config.store["port"] == 27017 and config.signal["port"] == 6379
    assert config.cli["time_format"]
    assert config.logging["version"] == 1
    assert config.deprecations == []


def test_default_file_text_is_the_built_in_defaults(home: Path) -> None:
    text = Config.defaults_yaml()
    assert text.lstrip().startswith("#")  # a commented file
    path = write(home / "lightflow.cfg", text)
    assert Config.load(path, env(home)).to_dict() == Config.load(environ=env(home)).to_dict()
    assert yaml.safe_load(text) == Config.load(environ=env(home)).to_dict()


def test_lookup_order(home: Path) -> None:
    legacy = write(home / "lightflow.cfg", "cli: {time_format: legacy}\n")
    assert Config.load(environ=env(home)).source == legacy
    user = write(home / ".config" / "lightflow" / "lightflow.cfg", "cli: {time_format: user}\n")
    assert Config.load(environ=env(home)).source == user
    xdg = write(home / "xdg" / "lightflow" / "lightflow.cfg", "cli: {time_format: xdg}\n")
    assert Config.load(environ=env(home, XDG_CONFIG_HOME=str(home / "xdg"))).source == xdg
    local = write(Path.cwd() / "lightflow.cfg", "cli: {time_format: local}\n")
    assert Config.load(environ=env(home)).cli["time_format"] == "local"
    assert Config.load(environ=env(home)).source == local
    named = write(home / "named.cfg", "cli: {time_format: named}\n")
    assert Config.load(environ=env(home, LIGHTFLOW_CONFIG=str(named))).source == named
    given = write(home / "given.cfg", "cli: {time_format: given}\n")
    config = Config.load(given, env(home, LIGHTFLOW_CONFIG=str(named)))
    assert config.cli["time_format"] == "given"


def test_one_x_file_is_accepted_with_a_deprecation_note(home: Path) -> None:
    path = write(home / "site" / "lightflow.cfg", ONE_X_CFG)
    config = Config.load(path, env(home))
    assert config.workflows == [home / "site" / "workflows"]
    assert config.broker_configured
    assert config.celery["timezone"] == "Australia/Melbourne"
    assert config.celery["worker_concurrency"] == 8
    assert config.store["database"] == "lightflow"
    assert config.store["auth_source"] == "admin"  # defaults fill what 1.x lacked
    assert config.cli["time_format"] == "%d/%m/%Y %H:%M:%S"
    assert config.logging["loggers"]["celery"]["level"] == "INFO"
    # one single-line note per setting that no longer applies
    assert len(config.deprecations) == 2
    graph, polling = sorted(config.deprecations, key=lambda note: "'signal." in note)
    assert "graph" in graph and str(path) in graph and "\n" not in graph
    assert "'signal.polling_time'" in polling and "\n" not in polling


def test_relative_folders_resolve_against_the_file_not_the_working_folder(home: Path) -> None:
    path = write(
        home / "site" / "lightflow.cfg",
        "workflows: [flows, ../shared, /abs/flows, ~/mine]\nlibraries: [lib]\n",
    )
    config = Config.load(path, env(home))
    assert config.workflows == [
        home / "site" / "flows",
        home / "shared",
        Path("/abs/flows"),
        Path(os.path.expanduser("~/mine")),
    ]
    assert config.libraries == [home / "site" / "lib"]


def test_a_partial_section_keeps_the_other_defaults(home: Path) -> None:
    path = write(home / "lightflow.cfg", "celery:\n  broker_url: redis://h:6379/1\nstore:\n")
    config = Config.load(path, env(home))
    assert config.celery["broker_url"] == "redis://h:6379/1"
    assert config.celery["worker_concurrency"] == 8
    assert config.store["port"] == 27017  # an empty section is an empty mapping


def test_an_empty_file_gives_the_defaults(home: Path) -> None:
    path = write(home / "lightflow.cfg", "# nothing\n")
    assert Config.load(path, env(home)).to_dict() == Config.load(environ=env(home)).to_dict()


def test_environment_overrides(home: Path) -> None:
    path = write(home / "lightflow.cfg", "store: {host: filehost}\n")
    config = Config.load(
        path,
        env(
            home,
            LIGHTFLOW_STORE__HOST="db1",
            LIGHTFLOW_STORE__PORT="27018",
            LIGHTFLOW_STORE__PASSWORD="null",
            LIGHTFLOW_CELERY__BROKER_URL="redis://broker:6379/0",
            LIGHTFLOW_CELERY__WORKER_SEND_TASK_EVENTS="true",
            LIGHTFLOW_EXTENSIONS__FS__POLL_INTERVAL="0.25",
            LIGHTFLOW_SIGNAL__PASSWORD="[not, a list]",
            LIGHTFLOW_WORKFLOWS=os.pathsep.join(["/a", "rel"]),
            LIGHTFLOW_CONFIG_UNRELATED="ignored",
        ),
    )
    assert config.store["host"] == "db1"
    assert config.store["port"] == 27018
    assert config.store["password"] is None
    assert config.celery["worker_send_task_events"] is True
    assert config.broker_configured
    assert config.extensions["fs"] == {"poll_interval": 0.25}
    assert config.signal["password"] == "[not, a list]"  # only scalars are parsed
    assert config.workflows == [Path("/a"), Path.cwd() / "rel"]


def test_an_override_of_an_unknown_section_names_the_variable(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"LIGHTFLOW_STOR__HOST: .*'stor'"):
        Config.load(environ=env(home, LIGHTFLOW_STOR__HOST="db1"))


def test_an_override_below_a_single_value_is_an_error(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"LIGHTFLOW_STORE__HOST__NAME: 'store.host'"):
        Config.load(environ=env(home, LIGHTFLOW_STORE__HOST__NAME="x"))


def test_a_graph_override_is_accepted_with_a_note(home: Path) -> None:
    config = Config.load(environ=env(home, LIGHTFLOW_GRAPH__DAG_POLLING_TIME="1"))
    assert [n for n in config.deprecations if n.startswith("LIGHTFLOW_GRAPH__")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workflows: [a\ncelery: {}\n", r"lightflow\.cfg:2: invalid YAML: "),
        ("workflows: ./flows\n", r"section 'workflows' must be a list of folders, got a string"),
        ("celery: [a, b]\n", r"section 'celery' must be a mapping of settings, got a list"),
        ("store: 27017\n", r"section 'store' must be a mapping of settings, got a number"),
        ("- workflows\n", r"a config file is a mapping of sections"),
    ],
)
def test_invalid_files_are_one_line_errors_naming_the_file(
    home: Path, text: str, message: str
) -> None:
    path = write(home / "lightflow.cfg", text)
    with pytest.raises(ConfigError, match=message) as caught:
        Config.load(path, env(home))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_an_error_when_named(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.cfg"):
        Config.load(home / "nope.cfg", env(home))
    with pytest.raises(ConfigError, match=r"config file not found: .*gone\.cfg"):
        Config.load(environ=env(home, LIGHTFLOW_CONFIG=str(home / "gone.cfg")))


def test_a_directory_is_not_a_config_file(home: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        Config.load(home, env(home))


def test_from_dict_builds_a_config_like_a_file(tmp_path: Path) -> None:
    config = Config.from_dict(
        {"workflows": ["flows"], "celery": {"broker_url": "redis://x"}}, base_dir=tmp_path
    )
    assert config.workflows == [tmp_path / "flows"]
    assert config.broker_configured
    assert config.celery["worker_concurrency"] == 8
    with pytest.raises(ConfigError):
        Config.from_dict({"celery": "redis://x"})


class _DefaultsPlugin:
    @hookimpl
    def lightflow_config_defaults(self):
        return {"extensions": {"demo": {"interval": 5, "paths": ["/data"]}}}


@pytest.fixture
def defaults_plugin():
    manager = get_plugin_manager()
    plugin = _DefaultsPlugin()
    manager.register(plugin, name="demo-defaults")
    yield plugin
    manager.unregister(plugin)


@pytest.mark.usefixtures("defaults_plugin")
def test_extensions_contribute_defaults_that_files_and_env_override(home: Path) -> None:
    assert Config.load(environ=env(home)).extensions["demo"] == {
        "interval": 5,
        "paths": ["/data"],
    }
    assert "demo" not in Config.load(environ=env(home), plugin_defaults=False).extensions
    path = write(home / "lightflow.cfg", "extensions:\n  demo:\n    interval: 7\n")
    config = Config.load(path, env(home, LIGHTFLOW_EXTENSIONS__DEMO__PATHS="/other"))
    assert config.extensions["demo"] == {"interval": 7, "paths": "/other"}
    assert "demo:" in Config.defaults_yaml()


# -- checked settings ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "signal",
    [
        {"url": "redis://:pw@h:6379/1"},
        {"url": "rediss://h:6380/0", "ssl": True},
        {"url": "unix:///run/redis.sock"},
        {"url": "REDIS://h/0"},
        {"url": ""},
        {"host": "10.0.0.5", "port": "6380", "database": "2", "password": 12345},
        {"port": 6379, "database": 0, "password": None, "ssl": None},
        {"heartbeat_timeout": 2.5},
        {"heartbeat_timeout": None},
        {"keep_finished_runs": "12h"},
        {"keep_finished_runs": 3600},
        {"keep_finished_runs": 0},
        {"keep_finished_runs": None},
        {"keep_finished_runs": False},
    ],
)
def test_valid_signal_settings_pass_the_check(home: Path, signal: dict[str, object]) -> None:
    path = write(home / "lightflow.cfg", yaml.safe_dump({"signal": signal}))
    assert Config.load(path, env(home)).signal.items() >= signal.items()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LIGHTFLOW_SIGNAL__HOTS",
            "db1",
            r"unknown signal setting 'hots' \(did you mean 'host'\?\)",
        ),
        ("LIGHTFLOW_SIGNAL__URL", "http://h/0", r"signal\.url must be a Redis URL"),
        ("LIGHTFLOW_SIGNAL__URL__X", "1", r"signal settings are single values"),
        (
            "LIGHTFLOW_SIGNAL__HEARTBEAT_TIMEOUT",
            ".inf",
            r"signal\.heartbeat_timeout must be .*\(default 3\)",
        ),
        ("LIGHTFLOW_SIGNAL__KEEP_FINISHED_RUNS", "7x", r"signal\.keep_finished_runs: '7x'"),
        ("LIGHTFLOW_STOER__HOST", "db1", r"'stoer' takes keys \(did you mean 'store'\?\)"),
    ],
)
def test_bad_overrides_are_errors_naming_the_variable(
    home: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Config.load(environ=env(home, **{variable: value}))
    assert variable in str(caught.value) and "\n" not in str(caught.value)


def test_a_deprecated_signal_override_gets_a_note(home: Path) -> None:
    config = Config.load(environ=env(home, LIGHTFLOW_SIGNAL__POLLING_TIME="0.5"))
    assert config.deprecations == [
        "LIGHTFLOW_SIGNAL__POLLING_TIME: 'signal.polling_time' is no longer used: runs are "
        "event-driven; remove it"
    ]


class _SectionPlugin:
    @hookimpl
    def lightflow_config_defaults(self):
        return {"beamline": {"name": "MX1"}}


def test_a_section_an_extension_contributes_defaults_for_is_known(home: Path) -> None:
    path = write(home / "lightflow.cfg", "beamline: {name: MX2}\n")
    with pytest.raises(ConfigError, match=r"unknown section 'beamline'; the sections are: "):
        Config.load(path, env(home))
    manager = get_plugin_manager()
    plugin = _SectionPlugin()
    manager.register(plugin, name="demo-section")
    try:
        assert Config.load(path, env(home)).section("beamline") == {"name": "MX2"}
    finally:
        manager.unregister(plugin)


def test_from_dict_checks_only_the_types_of_sections() -> None:
    config = Config.from_dict({"signal": {"hots": "db1", "heartbeat_timeout": "abc"}})
    assert config.signal["hots"] == "db1"
    assert Config.from_dict({"celery": {"brokr_url": "x"}}).celery == {
        **Config.from_dict({}).celery,
        "brokr_url": "x",
    }


def test_the_celery_section_is_checked_once_celery_is_loaded(home: Path) -> None:
    import celery  # noqa: F401  (what building the app imports first)

    path = write(home / "site.cfg", "celery:\n  worker_concurency: 4\n")
    config = Config.load(path, env(home))
    message = (
        rf"^{re.escape(str(path))}: 'worker_concurency' is not a Celery setting "
        r"\(did you mean 'worker_concurrency'\?\)"
    )
    with pytest.raises(ConfigError, match=message):
        _ = config.celery
    with pytest.raises(ConfigError, match=message):
        _ = config.broker_configured  # still refused on the next read
    variable = "LIGHTFLOW_CELERY__WORKER_CONCURRENCY"
    overridden = Config.load(environ=env(home, **{variable: "four"}))
    with pytest.raises(
        ConfigError, match=rf"^celery\.worker_concurrency must be .*\(in {variable}\)$"
    ):
        _ = overridden.celery
    assert Config.load(environ=env(home)).celery["worker_concurrency"] == 8


@pytest.mark.parametrize(
    "settings",
    [
        yaml.safe_load(ONE_X_CFG)["celery"],
        {"CELERYD_CONCURRENCY": 4, "BROKER_URL": "redis://h/0", "CELERY_ACKS_LATE": True},
        {"broker_use_ssl": {"ssl_cert_reqs": "required"}, "broker_heartbeat": 10.0},
        {"worker_concurrency": None, "task_time_limit": 30, "result_expires": 3600.5},
        {"broker_transport_options": {"visibility_timeout": 30}, "task_default_queue": "q"},
    ],
)
def test_celery_settings_that_celery_takes_pass(settings: dict[str, object]) -> None:
    from lightflow.config import check_celery_settings

    check_celery_settings(settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"worker_concurrency": "four"}, r"celery\.worker_concurrency must be an integer"),
        ({"worker_concurrency": True}, r"celery\.worker_concurrency must be an integer"),
        ({"worker_prefetch_multiplier": 1.5}, r"must be an integer, got 1\.5"),
        ({"broker_use_ssl": "yes"}, r"broker_use_ssl must be true, false or a mapping"),
        ({"task_acks_late": 1}, r"task_acks_late must be true or false, got 1"),
        ({"broker_connection_timeout": "4s"}, r"must be a number, got '4s'"),
        ({"celeryd_concurrency": 4}, r"'celeryd_concurrency' is not a Celery setting"),
        ({"frobnicate": 1}, r"'frobnicate' is not a Celery setting; the celery section"),
    ],
)
def test_celery_settings_that_celery_does_not_take_are_errors(
    settings: dict[str, object], message: str
) -> None:
    from lightflow.config import check_celery_settings

    with pytest.raises(ConfigError, match=message) as caught:
        check_celery_settings(settings, dict.fromkeys(settings, "site.cfg"))
    assert "site.cfg" in str(caught.value)
