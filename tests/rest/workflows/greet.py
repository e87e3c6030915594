"""Greet someone a number of times: the REST suite's workflow with parameters.

Prints one log line per greeting and keeps the greetings in the store.
"""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("name", help="Who is greeted"),
        Option("count", default=1, type=int, help="How many greetings"),
        Option("loud", default=False, type=bool, help="Shout the greetings"),
    ]
)


def greet(data, store, signal, context):
    for number in range(store.get("count")):
        text = f"hello {store.get('name')} #{number}"
        print(text.upper() if store.get("loud") else text)
        store.push("greetings", text)
    store.set("scan.energy", 12.4)


def done(data, store, signal, context):
    print("done")


greeter = PythonTask("greet", greet)
finish = PythonTask("finish", done)

d = Dag("main")
d.define({greeter: finish})
