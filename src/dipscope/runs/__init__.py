"""Run directories and sweeps: the layer between the fit loop and the experiments.

* :mod:`~dipscope.runs.rundir` — self-describing run directories, written atomically;
* :mod:`~dipscope.runs.task` — :class:`Task`, one unit of an experiment;
* :mod:`~dipscope.runs.executors` — who runs the tasks (here, or on a Ray cluster);
* :mod:`~dipscope.runs.schedule` — the loop that feeds an executor, retries, reports, cancels;
* :mod:`~dipscope.runs.sweep` — :func:`run_tasks`: check, skip the finished, run the rest.

Nothing here imports from :mod:`dipscope.experiments` or the command line.
"""

from .executors import ExecutorOptions
from .schedule import TasksFailed
from .rundir import RunWriter, read_record, run_record, write_csv, write_json
from .sweep import SWEEP_MARK, Plan, check_sweep_folder, claim_sweep_folder, finished_summary, plan_tasks, run_tasks
from .task import Task, require_complete, tensor_digest

__all__ = ["ExecutorOptions", "Plan", "RunWriter", "SWEEP_MARK", "Task", "TasksFailed", "check_sweep_folder",
           "claim_sweep_folder", "finished_summary", "plan_tasks", "read_record", "require_complete", "run_record",
           "run_tasks", "tensor_digest", "write_csv", "write_json"]
