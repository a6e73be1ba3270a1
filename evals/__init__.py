"""evals: the eval harness behind `iclaw eval` — run the task suite across model and agent
versions, store every result, and score it.

Only the `iclaw eval` command imports this package (lazily), so `import iclaw` never
loads it. The curated surface is re-exported here; the modules are:

- `task` (schema, suite loader), `checks`, `file_spec`, `snapshot`, `clean_room` — what a
  task is and how it is checked;
- `sandbox`, `shell`, `attempt`, `runner`, `versions`, `server` — how it is run;
- `store`, `summary`, `scoring`, `report`, `compare`, `transcript` — results and scores;
- `validate`, `progress`, `cli` — the command line.
"""

from evals.errors import EvalError, HarnessError, RunNotFound, SpecError, StoreError, TaskError
from evals.runner import RunOptions, Runner
from evals.store import ResultRecord, RunRecord, Store
from evals.summary import RunSummary, summarize
from evals.task import Suite, Task, load_suite, load_task
from evals.versions import AgentVersion, ModelVersion, parse_agent_specs, parse_model_specs

__all__ = [
    "EvalError",
    "HarnessError",
    "RunNotFound",
    "SpecError",
    "StoreError",
    "TaskError",
    "RunOptions",
    "Runner",
    "ResultRecord",
    "RunRecord",
    "Store",
    "RunSummary",
    "summarize",
    "Suite",
    "Task",
    "load_suite",
    "load_task",
    "AgentVersion",
    "ModelVersion",
    "parse_agent_specs",
    "parse_model_specs",
]
