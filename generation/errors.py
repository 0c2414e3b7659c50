"""The one exception family of study generation: a bad input, reported as one line."""
from __future__ import annotations


class GenerationError(ValueError):
    """A user error (bad config, dataset, model or bundle) whose message is one line naming the problem."""
