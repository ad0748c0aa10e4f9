"""Losses, generic over any backend's Values (they only use Value operators).

Each loss is a mean over samples, built with the operations listed in its
docstring and in that order, so every backend computes the same float64
numbers. Targets and labels are numbers or Values (:func:`spec.compile_step` passes
them as Values); either way the loss has the same value and gradients.

Every argument that holds one entry per sample (or per logit) is a *sequence*: a list, a
tuple, a ``range`` or a NumPy array of one or more dimensions, something with a length
and an order. Anything else raises :class:`~spec.errors.ShapeError` before any node is
made, naming what it got: a generator or other iterator (it has no length; pass
``list(...)``), a set, a 0-d array (one number, not a sequence of them), a single
number, ``None`` or a Value. A bad *entry* of a sequence raises as that entry would
elsewhere (:class:`~spec.errors.OperandTypeError` for a string, ...).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from functools import reduce
from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spec.errors import OperandTypeError, ShapeError
from spec.operands import as_finite_float, echo
from spec.value import ValueBase

__all__ = [
    "MAX_CLASSES",
    "binary_cross_entropy",
    "cross_entropy",
    "l2_penalty",
    "logsumexp",
    "mse_loss",
    "one_hot",
    "softmax",
    "svm_loss",
]

#: the most classes :func:`one_hot` makes rows for (the largest int32): a larger ``k`` is no class count
MAX_CLASSES = 2**31 - 1


def _pairs(predictions: Sequence[Any], targets: Sequence[Any], what: str) -> list[tuple[Any, Any]]:
    _sequence(predictions, f"{what}: predictions")
    _sequence(targets, f"{what}: targets")
    if len(predictions) != len(targets):
        raise ShapeError(
            f"{what}: {len(predictions)} predictions but {len(targets)} targets; the lengths must match"
        )
    if len(predictions) == 0:
        raise ShapeError(f"{what}: no predictions; a mean over zero samples is undefined")
    return [(p, _target(t)) for p, t in zip(predictions, targets, strict=True)]


def _target(t: Any) -> Any:
    return t if isinstance(t, ValueBase) else as_finite_float(t, "target")


def _mean(terms: list[Any]) -> Any:
    # sum(terms) * (1.0 / n): micrograd's demo writes its mean this way.
    return sum(terms) * (1.0 / len(terms))


def mse_loss(predictions: Sequence[Any], targets: Sequence[Any]) -> Any:
    """Mean squared error: ``mean((p - t) ** 2)``.

    ``predictions`` and ``targets`` are sequences of the same non-zero length (see the
    module docstring); anything else raises :class:`~spec.errors.ShapeError`.
    """
    return _mean([(p - t) ** 2 for p, t in _pairs(predictions, targets, "mse_loss")])


def svm_loss(scores: Sequence[Any], labels: Sequence[Any]) -> Any:
    """micrograd's max-margin loss for labels ±1: ``mean(relu(1 + -y * s))``.

    ``scores`` and ``labels`` are sequences of the same non-zero length, as for :func:`mse_loss`.
    """
    return _mean([(1 + -y * s).relu() for s, y in _pairs(scores, labels, "svm_loss")])


def binary_cross_entropy(probabilities: Sequence[Any], targets: Sequence[Any]) -> Any:
    """``mean(-(t * log(p) + (1 - t) * log(1 - p)))`` for probabilities in (0, 1).

    A probability of exactly 0 or 1 raises :class:`~spec.errors.DomainError` (log of 0).
    ``probabilities`` and ``targets`` are sequences of the same non-zero length, as for
    :func:`mse_loss`.
    """
    pairs = _pairs(probabilities, targets, "binary_cross_entropy")
    return _mean([-(t * p.log() + (1 - t) * (1 - p).log()) for p, t in pairs])


def l2_penalty(parameters: Iterable[Any], alpha: float) -> Any:
    """micrograd's regularisation: ``alpha * sum(p * p)``.

    ``parameters`` is any iterable (``model.parameters()``, a generator); something that
    cannot be iterated, or a 0-d array, raises :class:`~spec.errors.ShapeError`.
    """
    alpha = as_finite_float(alpha, "alpha")
    if not isinstance(parameters, Iterable) or isinstance(parameters, ValueBase) or _is_0d(parameters):
        raise ShapeError(f"l2_penalty: parameters must be an iterable of Values, got {_describe(parameters)}")
    squares = [p * p for p in parameters]
    if not squares:
        raise ShapeError("l2_penalty: no parameters")
    return alpha * sum(squares)


# --- multi-class: logsumexp, softmax, cross-entropy ------------------------------------------------
def logsumexp(values: Sequence[Any]) -> Any:
    """``log(sum(exp(z)))``, shifted by the largest ``z`` so that no ``exp`` overflows.

    Built as ``m + log(sum(exp(z + (-m))))`` with ``m = z[0].max(z[1]).max(z[2])...``: the
    shift is an ordinary Value (``max`` passes the gradient on), so nothing reads ``.data``
    and the function compiles. Logits of ±800 give ±800, not an overflow. ``values`` is a
    non-empty sequence of Values (see the module docstring): anything else raises
    :class:`~spec.errors.ShapeError`, an entry that is not a Value
    :class:`~spec.errors.OperandTypeError`.
    """
    shifted, maximum = _shifted_exps(values, "logsumexp")
    return maximum + _total(shifted).log()


def softmax(values: Sequence[Any]) -> list[Any]:
    """``exp(z_i) / sum(exp(z))`` for each ``z_i``, shifted as in :func:`logsumexp`.

    Each output is ``exp(z_i + (-m)) / s``, one division, with ``s`` the sum of the exps.
    ``values`` is checked as for :func:`logsumexp`.
    """
    shifted, _ = _shifted_exps(values, "softmax")
    total = _total(shifted)
    return [e / total for e in shifted]


def cross_entropy(logits: Sequence[Sequence[Any]], labels: Sequence[Any]) -> Any:
    """Mean over samples of ``logsumexp(z) - z[label]``: softmax cross-entropy.

    ``logits`` is one sequence of ``k`` Values per sample (``MLP(nin, [..., k])`` gives
    them). Each label is an integer in ``[0, k)``, or a row of ``k`` target probabilities,
    numbers or Values (``one_hot(labels, k)``): then ``z[label]`` is ``sum(z_j * t_j)``,
    the same number for a one-hot row. Rows are what :func:`spec.compile_step` passes
    (targets of shape ``(n, k)``): a compiled step cannot pick a logit by a label that
    changes from batch to batch. ``logits`` and ``labels`` are sequences (a list, a tuple,
    a 1-d array of labels or a 2-d array of rows; see the module docstring). Bad input
    raises before any node is made: ShapeError (no samples, lengths that differ, a label
    outside ``[0, k)``, or ``logits``/``labels`` that are not a sequence, such as a
    generator or a 0-d array) or OperandTypeError (a label that is not an integer, such as
    ``2.0``, ``True``, a 0-d array or a Value).
    """
    rows = _logit_rows(logits)
    k = len(rows[0])
    _sequence(labels, "cross_entropy: labels")
    if len(labels) != len(rows):
        raise ShapeError(f"cross_entropy: {len(rows)} samples of logits but {len(labels)} labels")
    picks = [_label(label, k, s) for s, label in enumerate(labels)]
    terms = []
    for z, pick in zip(rows, picks, strict=True):
        picked = (
            z[pick] if isinstance(pick, int) else _total([zj * tj for zj, tj in zip(z, pick, strict=True)])
        )
        terms.append(logsumexp(z) - picked)
    return _mean(terms)


def one_hot(labels: Sequence[Any], k: int) -> NDArray[np.float64]:
    """``(n, k)`` float64 rows, 1.0 at each label and 0.0 elsewhere: targets for :func:`cross_entropy`.

    ``labels`` is a sequence of ``n`` integers in ``[0, k)`` (a list, a tuple, a 1-d
    array); ``k`` an integer from 1 to :data:`MAX_CLASSES` (``2**31 - 1``). Bad input
    raises :class:`~spec.errors.ShapeError` (a ``k`` outside that range or not an integer,
    ``labels`` that are not a sequence such as ``None``, a number, a generator or a 0-d
    array, a label outside ``[0, k)``) or :class:`~spec.errors.OperandTypeError` (a label
    that is not an integer), checked in that order before anything is allocated; ``n``
    rows of ``k`` too large to allocate raise ShapeError too (NumPy's ``MemoryError``,
    restated with the size).

    Example::

        >>> one_hot([2, 0], 3)
        array([[0., 0., 1.],
               [1., 0., 0.]])
    """
    if not isinstance(k, Integral) or isinstance(k, bool) or not 1 <= k <= MAX_CLASSES:
        raise ShapeError(
            f"one_hot: k, the number of classes, must be an integer from 1 to {MAX_CLASSES:,} "
            f"(2**31 - 1), got {type(k).__name__}: {echo(k)}"
        )
    k = int(k)
    _sequence(labels, "one_hot: labels")
    picks = [_label(label, k, s) for s, label in enumerate(labels)]
    for s, pick in enumerate(picks):
        if not isinstance(pick, int):
            raise OperandTypeError(f"one_hot: label {s} must be an integer in [0, {k}), got a row")
    try:
        rows = np.zeros((len(picks), k), np.float64)
    except (MemoryError, ValueError):  # ValueError: a size NumPy cannot even address
        raise ShapeError(
            f"one_hot: {len(picks):,} rows of {k:,} classes take {len(picks) * k * 8:,} bytes, "
            "more than could be allocated"
        ) from None
    for s, pick in enumerate(picks):
        rows[s, pick] = 1.0
    return rows


def _shifted_exps(values: Sequence[Any], what: str) -> tuple[list[Any], Any]:
    """``[exp(z + (-m)) for z in values]`` and ``m``, the largest of ``values`` (a Value)."""
    if not _is_sequence(values) or len(values) == 0:
        raise ShapeError(f"{what}: expected a non-empty sequence of Values, got {_describe(values)}")
    for i, z in enumerate(values):
        if not isinstance(z, ValueBase):
            raise OperandTypeError(f"{what}: entry {i} must be a Value, got {type(z).__name__}: {echo(z)}")
    maximum = reduce(lambda m, z: m.max(z), values)
    shift = -maximum
    return [(z + shift).exp() for z in values], maximum


def _logit_rows(logits: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    if not _is_sequence(logits) or len(logits) == 0:
        raise ShapeError(f"cross_entropy: expected logits for one or more samples, got {_describe(logits)}")
    rows = list(logits)
    for s, row in enumerate(rows):
        if not _is_sequence(row) or len(row) == 0:
            raise ShapeError(
                f"cross_entropy: sample {s}'s logits must be a non-empty sequence of Values "
                f"(an MLP with k outputs gives k), got {_describe(row)}"
            )
        if len(row) != len(rows[0]):
            raise ShapeError(f"cross_entropy: sample 0 has {len(rows[0])} logits, sample {s} has {len(row)}")
    return rows


def _label(label: Any, k: int, s: int) -> int | Sequence[Any]:
    """Sample ``s``'s label as an index in ``[0, k)``, or its row of ``k`` target probabilities."""
    if isinstance(label, Integral) and not isinstance(label, bool):
        index = int(label)
        if not 0 <= index < k:
            raise ShapeError(f"label {s} is {index}, outside [0, {k}) for {k} logits")
        return index
    if _is_sequence(label) and not isinstance(label, str | bytes):
        if len(label) != k:
            raise ShapeError(f"label {s} is a row of {len(label)} targets; {k} logits need {k}")
        return [t if isinstance(t, ValueBase) else as_finite_float(t, f"label {s}'s targets") for t in label]
    raise OperandTypeError(
        f"label {s} must be an integer in [0, {k}) or a row of {k} target probabilities, got "
        f"{type(label).__name__}: {echo(label)}"
        + (
            "; a compiled step passes targets as Values: give it one_hot(labels, k)"
            if isinstance(label, ValueBase)
            else ""
        )
    )


def _total(terms: list[Any]) -> Any:
    # Left to right, without sum()'s leading 0.
    return reduce(operator.add, terms)


def _is_sequence(x: object) -> bool:
    """A sequence in the module docstring's sense: a length and an order, one entry per item."""
    if isinstance(x, np.ndarray):
        return x.ndim >= 1
    return isinstance(x, Sequence) and not isinstance(x, ValueBase)


def _is_0d(x: object) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 0


def _sequence(x: Any, what: str) -> None:
    """Raise :class:`ShapeError` unless ``x`` is a sequence: ``len`` and ``zip`` need one."""
    if not _is_sequence(x):
        raise ShapeError(
            f"{what} must be a sequence (a list, a tuple or an array of one or more dimensions), "
            f"got {_describe(x)}"
        )


def _describe(x: object) -> str:
    """What ``x`` is, for a message: its type and length, or why it is not a sequence."""
    name = type(x).__name__
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return f"0-d ndarray (one number, not a sequence of them): {echo(x)}"
        return f"ndarray of shape {x.shape}"
    if isinstance(x, Sequence):
        return f"{name} of length {len(x)}"
    if isinstance(x, ValueBase):
        return f"a single Value, {echo(x)}"
    if isinstance(x, Iterator):
        return f"{name}, which has no length: pass a list, such as list(...)"
    if isinstance(x, Iterable):
        return f"{name}, which is not a sequence: pass a list"
    return f"{name}: {echo(x)}"
