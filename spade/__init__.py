"""SPADE: sample-specific pruning of a classifier, the preprocessing step of the paper.

    trace = spade.prune(model, image, sparsity=spade.schedules.DEFAULT)
    pruned = trace.apply(model)
"""
from . import schedules
from .models import UnknownModelError, load_model
from .preprocess import Preprocess
from .prune import prune, prune_inputs
from .trace import Trace

__all__ = ["prune", "prune_inputs", "Trace", "schedules", "Preprocess", "load_model", "UnknownModelError"]
