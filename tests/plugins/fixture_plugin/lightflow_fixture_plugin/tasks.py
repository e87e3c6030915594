"""The fixture extension's task type."""

from lightflow.models import Action, BaseTask


class HelloTask(BaseTask):
    """Put a greeting into the task data under 'greeting'.

    Used by the tests of `lightflow tasks`.
    """

    def run(self, data, store, signal, context):
        data["greeting"] = "hello"
        return Action(data)
