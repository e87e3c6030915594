"""The file tasks on real folders: what each does, and how each fails.

The tasks run through ``BaseTask._run`` as the engine calls them (real files, a real
run document of the embedded store); the permission errors run whole workflows
through ``lightflow run`` without root's file capabilities, because root is never
refused. Every failure must be one line naming the task, the path and the reason.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from lightflow.exceptions import LightflowError, TaskDefinitionError
from lightflow.models import Action, TaskStatus
from lightflow_filesystem import (
    ChmodTask,
    ChownTask,
    CopyTask,
    GlobTask,
    LightflowFilesystemChmodError,
    LightflowFilesystemChownError,
    LightflowFilesystemConfigError,
    LightflowFilesystemCopyError,
    LightflowFilesystemMkdirError,
    LightflowFilesystemMoveError,
    LightflowFilesystemPathError,
    LightflowFilesystemPermissionError,
    LightflowFilesystemRemoveError,
    MakeDirTask,
    MoveTask,
    RemoveTask,
    WalkTask,
)

from tests.cluster import Cluster
from tests.tasks.helpers import make_args

from .conftest import WORKFLOWS, lightflow, one_error_line, write_file


def run(task: Any, values: dict[str, Any] | None = None) -> Action:
    return task._run(*make_args(values, task_name=task.name))


def tree(root: Path) -> Path:
    """``root/a.txt``, ``root/sub/b.txt``, ``root/sub/deeper/c.txt``."""
    (root / "sub" / "deeper").mkdir(parents=True)
    for relative in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"):
        write_file(root / relative, relative)
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_one_line(error: BaseException, *parts: str) -> None:
    """A Lightflow error of one line that names the task and every part."""
    assert isinstance(error, LightflowError) and isinstance(error, RuntimeError)
    text = str(error)
    assert "\n" not in text
    for part in parts:
        assert part in text, text


# -- MakeDirTask ---------------------------------------------------------------------------
def test_makedir_creates_folders_with_their_parents(tmp_path: Path) -> None:
    paths = [tmp_path / "a" / "b" / "c", tmp_path / "d"]
    run(MakeDirTask("mkdir", paths=[str(p) for p in paths]))
    assert all(path.is_dir() for path in paths)
    run(MakeDirTask("again", paths=str(paths[0])))  # existing: left as it is
    assert paths[0].is_dir()


def test_makedir_paths_evaluated_when_the_task_runs(tmp_path: Path) -> None:
    task = MakeDirTask("mkdir", paths=lambda data, store: [data["folder"]])
    run(task, {"folder": str(tmp_path / "from-data")})
    assert (tmp_path / "from-data").is_dir()


def test_makedir_refuses_a_relative_path(tmp_path: Path) -> None:
    with pytest.raises(LightflowFilesystemPathError) as error:
        run(MakeDirTask("mkdir", paths="relative/folder"))
    assert_one_line(error.value, "task 'mkdir'", "relative/folder", "not an absolute path")


def test_makedir_fails_on_a_file_in_the_way(tmp_path: Path) -> None:
    write_file(tmp_path / "taken")
    with pytest.raises(LightflowFilesystemMkdirError) as error:
        run(MakeDirTask("mkdir", paths=str(tmp_path / "taken" / "sub")))
    assert_one_line(error.value, "task 'mkdir'", str(tmp_path / "taken" / "sub"), "Not a directory")


def test_paths_of_the_wrong_type_are_a_config_error() -> None:
    with pytest.raises(LightflowFilesystemConfigError) as error:
        run(MakeDirTask("mkdir", paths=42))
    assert_one_line(error.value, "task 'mkdir'", "paths must be a path or a list of paths", "int")


# -- CopyTask ------------------------------------------------------------------------------
def test_copy_files_into_a_folder_keeps_their_times(tmp_path: Path) -> None:
    sources = [write_file(tmp_path / name, name) for name in ("one.h5", "two.h5")]
    os.utime(sources[0], (1_000_000_000, 1_000_000_000))
    backup = tmp_path / "backup"
    backup.mkdir()
    run(CopyTask("copy", sources=[str(s) for s in sources], destination=str(backup)))
    assert (backup / "one.h5").read_text() == "one.h5"
    assert (backup / "two.h5").read_text() == "two.h5"
    assert (backup / "one.h5").stat().st_mtime == 1_000_000_000
    assert sources[0].exists()


def test_copy_a_file_to_a_new_name(tmp_path: Path) -> None:
    source = write_file(tmp_path / "scan.h5", "frames")
    run(CopyTask("copy", sources=str(source), destination=str(tmp_path / "copy.h5")))
    assert (tmp_path / "copy.h5").read_text() == "frames"


def test_copy_a_folder_into_an_existing_folder(tmp_path: Path) -> None:
    # 1.x always failed here (copytree onto the existing destination).
    source = tree(tmp_path / "scan")
    backup = tmp_path / "backup"
    backup.mkdir()
    run(CopyTask("copy", sources=str(source), destination=str(backup)))
    assert (backup / "scan" / "sub" / "deeper" / "c.txt").read_text() == "sub/deeper/c.txt"
    # Copying again merges into the copy and overwrites its files.
    write_file(source / "a.txt", "changed")
    write_file(source / "new.txt", "new")
    run(CopyTask("again", sources=str(source), destination=str(backup)))
    assert (backup / "scan" / "a.txt").read_text() == "changed"
    assert (backup / "scan" / "new.txt").exists()


def test_copy_a_folder_to_a_new_path_keeps_links_as_links(tmp_path: Path) -> None:
    source = tree(tmp_path / "scan")
    (source / "link").symlink_to(source / "a.txt")
    run(CopyTask("copy", sources=str(source), destination=str(tmp_path / "copy")))
    assert (tmp_path / "copy" / "sub" / "b.txt").read_text() == "sub/b.txt"
    assert (tmp_path / "copy" / "link").is_symlink()


def test_copy_of_several_sources_needs_a_folder(tmp_path: Path) -> None:
    sources = [str(write_file(tmp_path / name)) for name in ("a", "b")]
    with pytest.raises(LightflowFilesystemPathError) as error:
        run(CopyTask("copy", sources=sources, destination=str(tmp_path / "nowhere")))
    assert_one_line(error.value, "task 'copy'", str(tmp_path / "nowhere"), "not an existing folder")


def test_copy_of_a_missing_source_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone.h5"
    with pytest.raises(LightflowFilesystemCopyError) as error:
        run(CopyTask("copy", sources=str(missing), destination=str(tmp_path)))
    assert_one_line(error.value, "task 'copy'", str(missing), "No such file or directory")


def test_copy_of_a_folder_into_itself_is_refused(tmp_path: Path) -> None:
    source = tree(tmp_path / "scan")
    with pytest.raises(LightflowFilesystemPathError) as error:
        run(CopyTask("copy", sources=str(source), destination=str(source / "sub")))
    assert_one_line(error.value, "task 'copy'", "into itself")
    assert not (source / "sub" / "scan").exists()


def test_copy_to_a_relative_destination_is_refused(tmp_path: Path) -> None:
    source = write_file(tmp_path / "a")
    with pytest.raises(LightflowFilesystemPathError) as error:
        run(CopyTask("copy", sources=str(source), destination="backup"))
    assert_one_line(error.value, "destination 'backup' is not an absolute path")


# -- MoveTask ------------------------------------------------------------------------------
def test_move_files_into_a_folder_and_rename_one(tmp_path: Path) -> None:
    sources = [write_file(tmp_path / name, name) for name in ("a.h5", "b.h5")]
    output = tmp_path / "output"
    output.mkdir()
    run(MoveTask("move", sources=[str(s) for s in sources], destination=str(output)))
    assert sorted(p.name for p in output.iterdir()) == ["a.h5", "b.h5"]
    assert not sources[0].exists()
    run(MoveTask("rename", sources=str(output / "a.h5"), destination=str(tmp_path / "c.h5")))
    assert (tmp_path / "c.h5").read_text() == "a.h5"


def test_move_a_folder_into_a_folder(tmp_path: Path) -> None:
    source = tree(tmp_path / "scan")
    archive = tmp_path / "archive"
    archive.mkdir()
    run(MoveTask("move", sources=str(source), destination=str(archive)))
    assert (archive / "scan" / "sub" / "deeper" / "c.txt").exists()
    assert not source.exists()


def test_move_onto_a_folder_of_the_same_name_fails_instead_of_nesting(tmp_path: Path) -> None:
    source = tree(tmp_path / "scan")
    (tmp_path / "archive" / "scan").mkdir(parents=True)
    with pytest.raises(LightflowFilesystemMoveError) as error:
        run(MoveTask("move", sources=str(source), destination=str(tmp_path / "archive")))
    assert_one_line(error.value, "task 'move'", "a folder of that name is already there")
    assert source.exists() and not (tmp_path / "archive" / "scan" / "scan").exists()


def test_move_of_a_missing_source_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone.h5"
    with pytest.raises(LightflowFilesystemMoveError) as error:
        run(MoveTask("move", sources=[str(missing)], destination=str(tmp_path / "x")))
    assert_one_line(error.value, "task 'move'", str(missing), "No such file or directory")


# -- RemoveTask ----------------------------------------------------------------------------
def test_remove_files_folders_and_links_not_their_targets(tmp_path: Path) -> None:
    folder = tree(tmp_path / "scan")
    kept = tree(tmp_path / "kept")
    link = tmp_path / "link"
    link.symlink_to(kept)
    single = write_file(tmp_path / "single.h5")
    run(RemoveTask("remove", paths=[str(folder), str(link), str(single)]))
    assert not folder.exists() and not link.exists() and not single.exists()
    assert (kept / "sub" / "b.txt").exists()


def test_remove_of_a_missing_path_fails(tmp_path: Path) -> None:
    # 1.x built this error and dropped it: the run went on as if the data were gone.
    with pytest.raises(LightflowFilesystemRemoveError) as error:
        run(RemoveTask("remove", paths=str(tmp_path / "never")))
    assert_one_line(error.value, "task 'remove'", str(tmp_path / "never"), "No such file")


def test_remove_permission_denied_fails_the_run(
    tmp_path: Path, unprivileged: tuple[str, ...]
) -> None:
    folder = tree(tmp_path / "scan")
    (folder / "sub").chmod(0o555)  # its content cannot be unlinked
    try:
        result = lightflow(
            "run", str(WORKFLOWS / "remove_path.py"), f"path={folder}", prefix=unprivileged
        )
    finally:
        (folder / "sub").chmod(0o755)
    line = one_error_line(result)
    assert "task 'remove'" in line and "Permission denied" in line
    assert f"cannot remove {folder} (at {folder / 'sub' / 'b.txt'})" in line
    assert (folder / "sub" / "b.txt").exists()


# -- ChmodTask -----------------------------------------------------------------------------
def test_chmod_a_tree_recursively(tmp_path: Path) -> None:
    root = tree(tmp_path / "scan")
    run(ChmodTask("chmod", paths=str(root), permission="750"))
    for path in (root, root / "a.txt", root / "sub", root / "sub" / "deeper" / "c.txt"):
        assert mode(path) == 0o750, path


def test_chmod_not_recursive_changes_the_folder_and_its_own_files(tmp_path: Path) -> None:
    root = tree(tmp_path / "scan")
    run(ChmodTask("chmod", paths=[str(root)], permission="0o700", recursive=False))
    assert mode(root) == 0o700 and mode(root / "a.txt") == 0o700
    assert mode(root / "sub") != 0o700 and mode(root / "sub" / "b.txt") != 0o700


def test_chmod_only_dirs_leaves_files_alone(tmp_path: Path) -> None:
    root = tree(tmp_path / "scan")
    before = mode(root / "sub" / "b.txt")
    run(ChmodTask("chmod", paths=str(root), permission=0o711, only_dirs=True))
    assert mode(root / "sub" / "deeper") == 0o711 and mode(root / "sub" / "b.txt") == before


def test_chmod_leaves_links_inside_a_tree_and_their_targets_alone(tmp_path: Path) -> None:
    root = tree(tmp_path / "scan")
    outside = write_file(tmp_path / "outside")
    outside.chmod(0o644)
    (root / "link").symlink_to(outside)
    run(ChmodTask("chmod", paths=str(root), permission="700"))
    assert mode(outside) == 0o644


@pytest.mark.parametrize("permission", ["9z", "", "rwx", 0o17777, None])
def test_chmod_refuses_a_mode_that_is_not_octal(tmp_path: Path, permission: Any) -> None:
    with pytest.raises(LightflowFilesystemPermissionError) as error:
        run(ChmodTask("chmod", paths=str(write_file(tmp_path / "f")), permission=permission))
    assert_one_line(error.value, "task 'chmod'", "not a POSIX mode in octal", "'755'")


def test_chmod_of_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(LightflowFilesystemChmodError) as error:
        run(ChmodTask("chmod", paths=str(tmp_path / "gone"), permission="644"))
    assert_one_line(error.value, "task 'chmod'", str(tmp_path / "gone"), "No such file")


def test_chmod_that_takes_away_access_reaches_the_whole_tree(
    tmp_path: Path, unprivileged: tuple[str, ...]
) -> None:
    # Each folder changes after its content: '400' on a folder first would make its
    # content unreachable to its (unprivileged) owner.
    root = tree(tmp_path / "scan")
    result = lightflow(
        "run", str(WORKFLOWS / "chmod_path.py"), f"path={root}", "mode=400", prefix=unprivileged
    )
    assert result.returncode == 0, result.stderr
    for path in (root, root / "sub", root / "sub" / "deeper" / "c.txt"):
        assert mode(path) == 0o400, path
    for folder in (root, root / "sub", root / "sub" / "deeper"):
        folder.chmod(0o755)


def test_chmod_refused_by_the_system_fails_the_run(
    tmp_path: Path, unprivileged: tuple[str, ...]
) -> None:
    if not unprivileged:
        pytest.skip("needs root to give the file away first")
    foreign = write_file(tmp_path / "foreign.h5")
    os.chown(foreign, 65534, 65534)
    result = lightflow(
        "run", str(WORKFLOWS / "chmod_path.py"), f"path={foreign}", "mode=600", prefix=unprivileged
    )
    line = one_error_line(result)
    assert "task 'chmod'" in line and str(foreign) in line and "Operation not permitted" in line


# -- ChownTask -----------------------------------------------------------------------------
def test_chown_a_tree_to_a_user_and_group_by_name_and_number(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing the owner needs root")
    root = tree(tmp_path / "scan")
    run(ChownTask("chown", paths=str(root), user="nobody", group=65534))
    for path in (root, root / "a.txt", root / "sub" / "deeper" / "c.txt"):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (65534, 65534), path


def test_chown_only_dirs_not_recursive(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing the owner needs root")
    root = tree(tmp_path / "scan")
    run(ChownTask("chown", paths=str(root), group=65534, recursive=False, only_dirs=True))
    assert os.stat(root).st_gid == 65534
    assert os.stat(root / "a.txt").st_gid != 65534 and os.stat(root / "sub").st_gid != 65534


def test_chown_needs_a_user_or_a_group(tmp_path: Path) -> None:
    with pytest.raises(LightflowFilesystemConfigError) as error:
        run(ChownTask("chown", paths=str(tmp_path)))
    assert_one_line(error.value, "task 'chown'", "give a user, a group or both")


def test_chown_to_an_unknown_user_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(LightflowFilesystemConfigError) as error:
        run(ChownTask("chown", paths=str(tmp_path), user="no-such-user-here"))
    assert_one_line(error.value, "task 'chown'", "unknown user 'no-such-user-here'")


def test_chown_of_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(LightflowFilesystemChownError) as error:
        run(ChownTask("chown", paths=str(tmp_path / "gone"), user=os.getuid()))
    assert_one_line(error.value, "task 'chown'", str(tmp_path / "gone"), "No such file")


def test_chown_refused_by_the_system_fails_the_run(
    tmp_path: Path, unprivileged: tuple[str, ...]
) -> None:
    # 1.x built this error and dropped it: the files kept their owner silently.
    root = tree(tmp_path / "scan")
    result = lightflow(
        "run", str(WORKFLOWS / "chown_path.py"), f"path={root}", "user=nobody", prefix=unprivileged
    )
    line = one_error_line(result)
    assert "task 'chown'" in line and str(root) in line and "Operation not permitted" in line
    assert os.stat(root / "a.txt").st_uid == os.getuid()


# -- GlobTask ------------------------------------------------------------------------------
def test_glob_lists_matches_sorted_in_the_order_of_the_paths(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for name in ("c.file", "a.file", "b.txt"):
        write_file(first / name)
    write_file(second / "z.file")
    seen: list[list[str]] = []
    task = GlobTask(
        "glob",
        paths=[str(first), str(second)],
        callback=lambda files, *args: seen.append(files),
        pattern="*.file",
    )
    run(task)
    assert seen == [[str(first / "a.file"), str(first / "c.file"), str(second / "z.file")]]


def test_glob_recursive_with_names_only(tmp_path: Path) -> None:
    root = tree(tmp_path / "scan")
    seen: list[list[str]] = []
    task = GlobTask(
        "glob",
        paths=str(root),
        callback=lambda files, data, store, signal, context: seen.append(files),
        pattern="**/*.txt",
        recursive=True,
        return_abs=False,
    )
    run(task)
    assert sorted(seen[0]) == ["a.txt", "b.txt", "c.txt"]


def test_glob_callback_sees_the_data_and_may_choose_successors(tmp_path: Path) -> None:
    write_file(tmp_path / "a.h5")

    def choose(files: list[str], data: Any, store: Any, signal: Any, context: Any) -> Action:
        data["count"] = len(files)
        return Action(data, limit=["next"])

    result = run(GlobTask("glob", paths=lambda data, store: str(tmp_path), callback=choose))
    assert result.limit == ["next"] and result.data["count"] == 1


def test_glob_of_a_missing_folder_fails(tmp_path: Path) -> None:
    # 1.x returned no files, which looks the same as an empty folder on a lost mount.
    with pytest.raises(LightflowFilesystemPathError) as error:
        run(GlobTask("glob", paths=str(tmp_path / "unmounted"), callback=None))
    assert_one_line(error.value, "task 'glob'", str(tmp_path / "unmounted"), "No such file")


# -- WalkTask ------------------------------------------------------------------------------
def test_walk_calls_back_for_every_file_with_its_dir_entry(tmp_path: Path) -> None:
    root = tree(tmp_path / "scan")
    (root / "link-to-sub").symlink_to(root / "sub")
    entries: list[os.DirEntry[str]] = []
    run(WalkTask("walk", path=str(root), callback=lambda e, *a: entries.append(e), recursive=True))
    names = [entry.name for entry in entries]
    assert names == ["a.txt", "link-to-sub", "b.txt", "c.txt"]  # links are not followed
    assert entries[0].stat().st_size == len("a.txt")
    flat: list[str] = []
    run(WalkTask("flat", path=str(root), callback=lambda e, *a: flat.append(e.name)))
    assert flat == ["a.txt", "link-to-sub"]


def test_walk_of_a_missing_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(LightflowFilesystemPathError) as error:
        run(WalkTask("walk", path=str(tmp_path / "gone"), callback=None))
    assert_one_line(error.value, "task 'walk'", str(tmp_path / "gone"), "No such file")


# -- what every file task shares -----------------------------------------------------------
def test_a_callback_that_is_not_callable_fails_at_definition() -> None:
    with pytest.raises(TaskDefinitionError, match="callback must be a function taking"):
        GlobTask("glob", paths="/tmp", callback="print")


def test_common_keywords_and_pickling(tmp_path: Path) -> None:
    calls: list[Any] = []
    task = MakeDirTask(
        "mkdir",
        paths=str(tmp_path / "new"),
        queue="io",
        callback_init=lambda *args: calls.append("init"),
        callback_finally=lambda status, *args: calls.append(status),
        force_run=True,
        propagate_skip=False,
    )
    assert task.queue == "io" and task.force_run and not task.propagate_skip
    run(cloudpickle.loads(cloudpickle.dumps(task)))  # as a worker gets it
    assert (tmp_path / "new").is_dir()
    run(task)
    assert calls == ["init", TaskStatus.Success]


# -- failures as runs report them -----------------------------------------------------------
def test_copy_into_a_folder_without_write_permission_fails_the_run(
    tmp_path: Path, unprivileged: tuple[str, ...]
) -> None:
    source = write_file(tmp_path / "scan.h5")
    locked = tmp_path / "archive"
    locked.mkdir(mode=0o555)
    result = lightflow(
        "run", str(WORKFLOWS / "copy_path.py"), f"source={source}", f"destination={locked}",
        prefix=unprivileged,
    )  # fmt: skip
    line = one_error_line(result)
    assert f"task 'copy': cannot copy {source}" in line and "Permission denied" in line
    assert not (locked / "scan.h5").exists()


def test_a_failing_file_task_fails_its_run_on_the_cluster(
    tmp_path: Path, redis_cluster: Cluster
) -> None:
    missing = tmp_path / "never-written.h5"
    record, _ = redis_cluster.run(
        str(WORKFLOWS / "copy_path.py"), {"source": str(missing), "destination": str(tmp_path)}
    )
    assert record["state"] == "failed"
    assert f"cannot copy {missing}: No such file or directory" in record["error"]
