"""Output the way tasks really write it: prints in pieces, from threads, from BashTask."""

import threading

from lightflow.models import Dag
from lightflow.tasks import BashTask, PythonTask


def pieces(data, store, signal, context):
    print("a", "b", 3)
    print("no newline", end="")
    print(" continued")
    helper = threading.Thread(target=print, args=("from a helper thread",))
    helper.start()
    helper.join()
    print("unfinished line at the end", end="")


def on_line(line, data, store, signal, context):
    print(f"on_line: {line.strip()}")


d = Dag("main")
d.define(
    {
        PythonTask("pieces", pieces): BashTask(
            "frames", "echo frame_00001.cbf", callback_stdout=on_line
        )
    }
)
