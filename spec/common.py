"""What every backend package re-exports unchanged: losses, optimizers, schedules.

A backend's ``__init__`` does ``from spec.common import *`` so that
``from backends.<name> import MLP, SGD, svm_loss`` works for every backend.
"""

from spec.losses import binary_cross_entropy, l2_penalty, mse_loss, svm_loss
from spec.optim import SGD, Adam, linear_decay

__all__ = ["SGD", "Adam", "binary_cross_entropy", "l2_penalty", "linear_decay", "mse_loss", "svm_loss"]
