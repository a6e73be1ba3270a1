"""The one exception tree of the `evals` package.

Every error a user can cause (a broken task file, an unknown run id, a bad `--model`
spec, ...) is an `EvalError` whose message says what to fix; `iclaw eval` prints it in
one line and exits non-zero.

`HarnessError` is special: it marks a failure of the *harness* (model server down,
workspace setup failed), never of the agent. The runner records it under its own status,
retries it, and leaves it out of every score.
"""

__all__ = [
    "EvalError",
    "TaskError",
    "SpecError",
    "StoreError",
    "RunNotFound",
    "HarnessError",
]


class EvalError(Exception):
    """Base class: something the user can fix; the message says how."""


class TaskError(EvalError):
    """A task file is invalid; the message names the file and the field."""


class SpecError(EvalError):
    """A `--model` / `--agent` spec or a command-line option is invalid."""


class StoreError(EvalError):
    """The results database cannot be opened or has an unexpected layout."""


class RunNotFound(EvalError):
    """A run (or task within a run) is not in the results database."""


class HarnessError(EvalError):
    """The harness, not the agent, failed: unreachable model, failed setup, server crash.

    `retryable` is False when trying again cannot help (e.g. a task without an oracle);
    `model_down` marks an unreachable model, so its remaining attempts are skipped.
    """

    def __init__(self, message: str, *, retryable: bool = True, model_down: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.model_down = model_down
