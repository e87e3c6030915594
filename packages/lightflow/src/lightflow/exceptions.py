"""The one error hierarchy of Lightflow.

Every error a user can cause (a bad workflow file, a bad parameter, an unreadable
config, a task that fails) is a :class:`LightflowError` whose ``str()`` is a one-line
message saying what is wrong and how to fix it. The CLI and the REST layer render these
in one place each; anything that is not a ``LightflowError`` is a bug and is shown with
its traceback.

The two exceptions that tasks raise on purpose to steer a run, :class:`StopTask` and
:class:`AbortWorkflow`, are control flow rather than errors and live here too so that
``lightflow.models`` can re-export them at their 1.x import path.
"""

from __future__ import annotations


class LightflowError(Exception):
    """Base of every error Lightflow reports to a user as a one-line message."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(LightflowError):
    """The configuration file or an environment override is unreadable or invalid."""


class NoBrokerError(ConfigError):
    """A command of the distributed engine, and no broker is configured."""


class NotFoundError(LightflowError):
    """What was asked for does not exist (a REST API answers 404)."""


class WorkflowNotFoundError(NotFoundError):
    """No workflow file matches the given name or path."""


class RunNotFoundError(NotFoundError):
    """No workflow run has the given id (or it was pruned)."""


class FollowTimeout(LightflowError):
    """Following a run gave up after the time it was given; the run itself goes on."""


class StateServerError(LightflowError):
    """The Redis state server cannot be reached, refuses the credentials, or failed."""


class WorkflowImportError(LightflowError):
    """A workflow file exists but cannot be imported (syntax error, failing import)."""


class WorkflowDefinitionError(LightflowError):
    """A workflow imports but does not describe a runnable workflow (e.g. no Dag)."""


class DagDefinitionError(WorkflowDefinitionError):
    """A DAG's schema is invalid: a cycle, a duplicated task name, a bad schema value."""


class ParameterError(LightflowError):
    """Arguments given to a workflow do not match its ``Parameters``."""


class TaskDefinitionError(LightflowError):
    """A task returned or requested something the engine cannot carry out.

    For example an ``Action`` whose ``limit`` names a task that is not a successor.
    """


class StoreError(LightflowError):
    """The data store is unreachable or refused an operation."""


class SignalError(LightflowError):
    """A signal from a task could not be carried out (e.g. an unknown DAG name)."""


class RunFailedError(LightflowError):
    """A workflow run ended without success; carries the failed task and its error."""

    def __init__(
        self,
        message: str,
        *,
        task: str | None = None,
        dag: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.task = task
        self.dag = dag
        self.traceback = traceback


class StopTask(Exception):
    """Raised inside a task to stop it early without failing the run.

    Args:
        message: Why the task stopped; shown in the run's progress and record.
        skip_successors: Skip all successors of the task (the 1.x default). With
            ``False`` the successors run and receive the task's input data.
    """

    def __init__(self, message: str = "", *, skip_successors: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.skip_successors = skip_successors


class AbortWorkflow(Exception):
    """Raised inside a task to abort the whole workflow run at once.

    Running tasks are asked to stop, nothing more is queued, and the run is recorded
    as aborted (the CLI exits non-zero).
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message
