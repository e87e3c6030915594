"""The distributed engine as the rest of Lightflow calls it.

The API, the worker, the Celery jobs (:mod:`.jobs`) and the trigger runtime import the
engine from here; each name lives in the module that owns one concern:

* :mod:`.settings`: where the servers are (:func:`state_url`, :func:`store_settings`,
  :func:`create_store`);
* :mod:`.cluster`: one process's handles on them (:class:`Cluster`) and its caches;
* :mod:`.submit`: recording a run and queueing its workflow job (:func:`submit`);
* :mod:`.starting` and :mod:`.task_job`: the three jobs (:func:`workflow_job`,
  :func:`dag_job`, :func:`task_job`);
* :mod:`.dag_state` and :mod:`.instance`: a DAG instance's state in Redis and its
  compare-and-set commits; :mod:`.inputs`: task inputs and outputs;
  :mod:`.outbox`: jobs committed and not yet sent (:func:`resend_unsent_jobs`);
* :mod:`.closing` and :mod:`.halting`: the end of a run, stopping it
  (:func:`halt_run`), a job that died of an internal error (:func:`job_failed`);
* :mod:`.channel`: signals from tasks (:class:`RedisSignalChannel`);
* :mod:`.meta`: META entries written to the store in batches;
* :mod:`.waiting`: what of a run waits on a queue (:func:`queued_work`, for ``workflow
  status`` and the note of ``workflow start --wait``);
* :mod:`.ready`: the ready lists task jobs pull from; :mod:`.recovery`: heartbeats,
  the tasks of dead workers and ready tasks nobody takes (:func:`recover_lost_tasks`,
  :func:`wake_stalled`); :mod:`.liveness`: which worker processes are alive and the
  jobs a dead worker held (:func:`resend_held_jobs`);
* :mod:`.task_log`: task output in the worker log and the run's log
  (:func:`current_task_tag`, :func:`keep_log_line`).

See ``docs/architecture.md`` for who acknowledges what and what is re-run after a crash.
"""

from .channel import RedisSignalChannel
from .cluster import Cluster
from .halting import halt_run, job_failed
from .liveness import resend_held_jobs
from .outbox import resend_unsent_jobs
from .ready import wake_stalled
from .recovery import recover_lost_tasks
from .settings import create_store, state_url, store_settings
from .starting import dag_job, workflow_job
from .submit import submit
from .task_job import task_job
from .task_log import current_task_tag, keep_log_line
from .waiting import queued_work

__all__ = [
    "Cluster",
    "RedisSignalChannel",
    "create_store",
    "current_task_tag",
    "dag_job",
    "halt_run",
    "job_failed",
    "keep_log_line",
    "queued_work",
    "recover_lost_tasks",
    "resend_held_jobs",
    "resend_unsent_jobs",
    "state_url",
    "store_settings",
    "submit",
    "task_job",
    "wake_stalled",
    "workflow_job",
]
