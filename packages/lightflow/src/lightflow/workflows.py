"""Finding, importing and describing workflow files.

A workflow is a Python file that defines one or more :class:`~lightflow.models.Dag`
objects at module level and, optionally, ``parameters = Parameters([...])``. Its name is
the file's stem (``examples/sequence.py`` is ``sequence``); files in subfolders of a
workflow path are named with dots (``beamline/scan.py`` is ``beamline.scan``).

Every way a workflow file can be broken (missing, not Python, syntax error, failing
import, no Dag) becomes a :class:`~lightflow.exceptions.LightflowError` with a one-line
message, so ``lightflow run`` and ``workflow list`` never show a traceback of ours.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from .config import CONFIG_NAME
from .exceptions import (
    LightflowError,
    WorkflowDefinitionError,
    WorkflowImportError,
    WorkflowNotFoundError,
)
from .models.dag import Dag
from .models.parameters import Parameters

_module_counter = itertools.count()


@dataclass
class Workflow:
    """A loaded workflow file.

    Attributes:
        name: The workflow's name (file stem, dotted for subfolders).
        path: The file it was loaded from.
        docstring: The module docstring ('' if none).
        dags: The DAGs defined in the file, by DAG name, in definition order.
        parameters: The declared parameters (empty if none).
    """

    name: str
    path: Path
    docstring: str
    dags: dict[str, Dag]
    parameters: Parameters = field(default_factory=Parameters)
    _pickled: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def summary(self) -> str:
        """The first line of the docstring."""
        return self.docstring.strip().splitlines()[0] if self.docstring.strip() else ""

    @property
    def autostart_dags(self) -> list[Dag]:
        """The DAGs started with the workflow."""
        return [dag for dag in self.dags.values() if dag.autostart]

    def pickled(self) -> bytes:
        """The workflow cloudpickled for the workers, pickled once per loaded workflow.

        A workflow is not changed once loaded (task objects are templates), so a
        caller that starts it many times (a trigger) pays for pickling once.

        Raises:
            LightflowError: It cannot be pickled (a task holds a lock, a file...).
        """
        if self._pickled is None:
            try:
                self._pickled = cloudpickle.dumps(self)
            except Exception as error:  # a lock, an open file, a connection...
                raise LightflowError(
                    f"{self.path}: the workflow cannot be sent to the workers: "
                    f"{type(error).__name__}: {error}; keep only picklable values in "
                    "tasks and DAGs (create locks, files and connections inside the "
                    "task's callback)"
                ) from None
        return self._pickled

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pickled": None}


@dataclass
class WorkflowListing:
    """One line of ``lightflow workflow list``: a workflow or the error loading it."""

    name: str
    path: Path
    summary: str = ""
    error: str | None = None


def find_workflow(
    name_or_path: str, paths: Iterable[str | Path] = (), *, config_file: str = CONFIG_NAME
) -> tuple[str, Path]:
    """Resolve a workflow file path or a workflow name to ``(name, path)``.

    A value naming an existing file (or ending in ``.py``) is a path; otherwise it is a
    name looked up in ``paths``, dots meaning subfolders. ``config_file`` is the
    configuration file named in the advice of a name not found (the one ``-c`` gave).

    Raises:
        WorkflowNotFoundError: No such file or workflow.
        WorkflowImportError: The file is not a Python file.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file() or name_or_path.endswith(".py") or "/" in name_or_path:
        if not candidate.exists():
            raise WorkflowNotFoundError(f"workflow file not found: {name_or_path}")
        if candidate.is_dir():
            raise WorkflowNotFoundError(
                f"{name_or_path} is a directory; give a workflow file or a workflow name"
            )
        if candidate.suffix != ".py":
            raise WorkflowImportError(
                f"{name_or_path} is not a Python file; a workflow is a .py file"
            )
        return candidate.stem, candidate.resolve()
    relative = Path(*name_or_path.split(".")).with_suffix(".py")
    searched = workflow_folders(paths)
    for folder in searched:
        path = folder / relative
        if path.is_file():
            return name_or_path, path.resolve()
    where = ", ".join(str(p) for p in searched) or "no workflow paths are configured"
    raise WorkflowNotFoundError(
        f"no workflow named '{name_or_path}' (searched: {where}); give a file path or "
        f"add its folder to 'workflows' in {config_file}"
    )


def workflow_folders(paths: Iterable[str | Path]) -> list[Path]:
    """The configured workflow folders, each checked to be an existing folder.

    A folder that is not there is a typo or an unmounted share, never "no workflows":
    1.x refused it too.

    Raises:
        WorkflowNotFoundError: One of ``paths`` is not an existing folder (named).
    """
    folders = [Path(p).expanduser() for p in paths]
    for folder in folders:
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise WorkflowNotFoundError(
                f"workflow folder {folder} {what}: fix 'workflows' in the configuration "
                "or LIGHTFLOW_WORKFLOWS"
            )
    return folders


def load_workflow(
    name_or_path: str,
    paths: Iterable[str | Path] = (),
    libraries: Iterable[str | Path] = (),
    *,
    config_file: str = CONFIG_NAME,
) -> Workflow:
    """Import a workflow file and collect its DAGs and parameters.

    Args:
        name_or_path: A file path or a workflow name.
        paths: Folders searched for workflow names.
        libraries: Folders put on ``sys.path`` so workflows can import shared code
            (the workflow's own folder is put there too, see :func:`add_workflow_folder`).
        config_file: The configuration file named in advice (see :func:`find_workflow`).

    Raises:
        LightflowError: Any reason the file does not describe a runnable workflow.
    """
    name, path = find_workflow(name_or_path, paths, config_file=config_file)
    add_libraries(libraries)
    add_workflow_folder(path)
    module = _import_file(path)
    dags: dict[str, Dag] = {}
    for value in vars(module).values():
        if isinstance(value, Dag):
            if value.name in dags and dags[value.name] is not value:
                raise WorkflowDefinitionError(
                    f"{path}: two DAGs are named '{value.name}'; DAG names must be unique"
                )
            dags[value.name] = value
    if not dags:
        raise WorkflowDefinitionError(
            f"{path}: no Dag found; define at least one lightflow.models.Dag at module level"
        )
    parameters = getattr(module, "parameters", None)
    if parameters is None:
        parameters = Parameters()
    elif not isinstance(parameters, Parameters):
        raise WorkflowDefinitionError(
            f"{path}: 'parameters' must be a lightflow.models.Parameters list"
        )
    return Workflow(
        name=name, path=path, docstring=module.__doc__ or "", dags=dags, parameters=parameters
    )


def add_libraries(libraries: Iterable[str | Path]) -> None:
    """Put library folders at the front of ``sys.path``, in their order, each once.

    The one way workflows get the configured ``libraries`` to import from: loading a
    workflow (:func:`load_workflow`), listing them (:func:`list_workflows`) and a
    worker at its start all call it. A folder already on the path stays where it is.
    """
    for library in reversed([str(Path(library).expanduser()) for library in libraries]):
        if library not in sys.path:
            sys.path.insert(0, library)


def add_workflow_folder(path: Path) -> None:
    """Put the folder of the workflow file ``path`` at the end of ``sys.path`` (once).

    As in 1.x, a workflow imports helper modules that sit next to it: loading it
    (:func:`load_workflow`, and so ``workflow list``) and a worker that runs it both
    call this. At the end, so that a workflow file named like a module (``random.py``)
    never hides that module from anyone.
    """
    folder = str(Path(path).expanduser().parent)
    if folder not in sys.path:
        sys.path.append(folder)


def list_workflows(
    paths: Iterable[str | Path], libraries: Iterable[str | Path] = ()
) -> list[WorkflowListing]:
    """Describe every workflow file in ``paths``; broken files carry their error.

    Files are loaded as for a run (:func:`load_workflow`), with ``libraries`` on the
    Python path, so a workflow that imports shared code is not listed as broken.
    """
    libraries = list(libraries)
    listings = []
    for folder in workflow_folders(paths):
        for path in sorted(folder.rglob("*.py")):
            if path.name.startswith("_"):
                continue
            name = ".".join(path.relative_to(folder).with_suffix("").parts)
            try:
                workflow = load_workflow(str(path), libraries=libraries)
            except LightflowError as error:
                listings.append(WorkflowListing(name, path, error=str(error)))
            else:
                listings.append(WorkflowListing(name, path, summary=workflow.summary))
    return listings


def _import_file(path: Path) -> ModuleType:
    module_name = f"lightflow_workflow_{path.stem}_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise WorkflowImportError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered so code in the workflow that looks itself up (dataclasses, pickle)
    # works while it loads, and marked pickle-by-value so its callbacks reach workers
    # that never imported this file.
    sys.modules[module_name] = module
    cloudpickle.register_pickle_by_value(module)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        sys.modules.pop(module_name, None)
        raise WorkflowImportError(
            f"{error.filename or path}:{error.lineno}: syntax error: {error.msg}"
        ) from None
    except LightflowError as error:
        sys.modules.pop(module_name, None)
        raise type(error)(f"{path}: {error}") from None
    except Exception as error:
        sys.modules.pop(module_name, None)
        line = _workflow_line(error, path)
        raise WorkflowImportError(f"{path}{line}: {type(error).__name__}: {error}") from None
    return module


def _workflow_line(error: BaseException, path: Path) -> str:
    """The ``:LINE`` of the deepest frame inside the workflow file, if any."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    return f":{frames[-1].lineno}" if frames else ""
