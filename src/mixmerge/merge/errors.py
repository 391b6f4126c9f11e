"""The single error type of the merge engine."""

from __future__ import annotations


class MergeError(ValueError):
    """Bad merge input (recipe, model, tensor or parameter); the message is one line naming it."""
