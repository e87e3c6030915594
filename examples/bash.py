"""Bash: run a shell command and handle its output line by line as it is written.

``BashTask`` runs the command with bash. ``callback_stdout`` gets each line of stdout
as soon as the command writes it, here while the (simulated) detector is still writing
frames. With ``capture_stdout=True`` the whole output is also kept for
``callback_end``, which gets the return code and can return an Action. A non-zero
return code is not an error by itself: ``callback_end`` decides.

Run it:  lightflow run examples/bash.py
"""

from lightflow.models import Action, Dag
from lightflow.tasks import BashTask, PythonTask

# Writes three frame names, one every 50 ms, like a detector filling a folder.
WRITE_FRAMES = 'for n in 1 2 3; do echo "frame_0000$n.cbf"; sleep 0.05; done'


def on_line(line, data, store, signal, context):
    frame = line.strip()  # a line keeps its trailing newline
    data["frames"] = [*data.get("frames", []), frame]
    print(f"on_line: {frame} arrived")


def on_end(returncode, stdout_file, stderr_file, data, store, signal, context):
    captured = stdout_file.read().decode().splitlines()
    print(f"on_end: exit code {returncode}, {len(captured)} lines captured")
    data["exit_code"] = returncode
    return Action(data)


def check(data, store, signal, context):
    print(f"check: {len(data['frames'])} frames seen: {', '.join(data['frames'])}")


watch_task = BashTask(
    name="watch_detector",
    command=WRITE_FRAMES,
    capture_stdout=True,
    callback_stdout=on_line,
    callback_end=on_end,
)
check_task = PythonTask(name="check", callback=check)

d = Dag("bash")
d.define({watch_task: check_task})
