"""The exceptions every package of the toolkit raises for a user's mistake.

    AlignError            base: anything a user can fix from the message alone
    ├── ConfigError       a recipe key, a command-line flag or a value (CLI exit status 2)
    ├── DataError         a file, a row or a field of input data
    └── ModelError        a model that cannot be found, installed or loaded

They live in `foundation`, which every other package may import (docs/architecture.md).
"""

from __future__ import annotations

__all__ = ["AlignError", "ConfigError", "DataError", "ModelError"]


class AlignError(Exception):
    """Base class: the message says what happened, the value, and what to do."""


class ConfigError(AlignError, ValueError):
    """A configuration key is unknown or a value is of the wrong type or out of range."""


class DataError(AlignError, ValueError):
    """Input data is malformed; the message names the file, the row (line) and the field."""


class ModelError(AlignError, RuntimeError):
    """A model cannot be resolved or loaded; the message says which package or path to fix."""
