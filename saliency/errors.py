"""The one exception family of the saliency benchmark: a bad input, reported as one line."""
from __future__ import annotations


class SaliencyError(ValueError):
    """A user error (bad config, model folder or record) whose message is one line naming the problem."""
