"""The one exception tree of the `llm` package.

Every error a user can cause (bad config, missing file, unknown model name, ...) is an
`LLMError` whose message says what to fix. The CLI prints it in one line and exits 1;
library callers catch `LLMError`. Foreign errors (OSError, safetensors, gguf, pydantic)
are translated once at the boundary with `raise X(...) from exc`. `did_you_mean` turns a
near-miss name into the hint those messages carry.
"""

import difflib
from collections.abc import Iterable

__all__ = [
    "did_you_mean",
    "LLMError",
    "ConfigError",
    "CheckpointError",
    "TokenizerError",
    "ModelNotFound",
    "UnsupportedModel",
    "DataError",
    "TrainingError",
    "InferenceError",
]


class LLMError(Exception):
    """Base class: something the user can fix; the message says how."""


class ConfigError(LLMError):
    """A config file, preset or override is invalid."""


class CheckpointError(LLMError):
    """A checkpoint directory is missing, half-written, corrupt or mismatched."""


class TokenizerError(LLMError):
    """A tokenizer file is missing or corrupt, or a token is unknown."""


class ModelNotFound(LLMError):
    """A model name is neither a path nor a known/pulled registry name."""


class UnsupportedModel(LLMError):
    """A model file uses an architecture or tensor type we cannot load."""


class DataError(LLMError):
    """Training or evaluation data is missing or does not fit the tokenizer."""


class TrainingError(LLMError):
    """Training cannot continue (e.g. the loss became NaN)."""


class InferenceError(LLMError):
    """A generation request is invalid (e.g. the context is longer than the model allows)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest of `choices`, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
