"""The error contract: what every backend raises for bad input.

Every exception derives from :class:`GradspecError` *and* from the built-in
exception a Python programmer would expect, so ``except ValueError`` keeps
working. Backends raise these exact classes, with the messages built here, and
raise them *before* anything is changed: a failed primitive operation creates
no node (not even the leaf of a number operand), and a failed assignment leaves
the old value in place. A composite (``a - b`` is ``a + (-b)``) whose second
primitive fails keeps the node its first one made; no graph reaches that node.

NaN/inf policy: the ``data`` of every Value is a finite float64. Constructing
or assigning a non-finite number raises :class:`NonFiniteError`; so does a number
too large for any float64 (``10**400``, a ``Fraction`` of one), wherever a number is
taken: Value data, an operand or exponent, an MLP input, a target, a learning rate,
a compiled step's data. An operation whose result is not finite raises
:class:`ResultOverflowError` (NaN can only come from non-finite inputs, which cannot
exist). Gradients are plain IEEE float64 and are not checked: backward passes never
raise. An optimizer step that would make a parameter infinite raises
:class:`ResultOverflowError`; one that would make it NaN (from a non-finite
gradient) :class:`NonFiniteError`.

Numbers: any :class:`numbers.Real` but ``bool`` (Python's or NumPy's ``bool_``): a flag
is refused with :class:`OperandTypeError`. Error messages quote input cut to about 80
characters.

Sequences: where a loss (or ``one_hot``) takes one entry per sample, it takes a sequence
with a length and an order (a list, a tuple, a NumPy array of one or more dimensions).
Anything else, such as a generator, a set, a 0-d array, a number or ``None``, raises
:class:`ShapeError`; so does a ``one_hot`` class count ``k`` outside ``[1, 2**31 - 1]``,
or rows too large to allocate (:mod:`spec.losses`).

Files: ``Module.load`` raises only value errors (``ValueError`` and its subclasses) for a
bad file, each naming the file: :class:`ShapeError` (the architecture, sizes of another type
included, or the parameter count differs), :class:`NonFiniteError` (NaN, infinity, or a
number too large for a float64 such as ``1e400`` or a 400-digit integer), plain
``ValueError`` (not a gradspec state: wrong format, missing or unknown key, non-number,
corrupt or truncated, nested too deeply, or larger than
``spec.state.max_file_bytes(model)`` = 1 MiB + 128 bytes per parameter, refused before
reading). A file that cannot be opened raises ``OSError``, as ``open()`` does; so does a
path that is not a regular file, refused before it is read or waited on:
``IsADirectoryError`` for a folder, ``OSError`` with errno ``EINVAL`` naming the path and
its kind for a FIFO, a device (``/dev/zero``) or a socket.
``Module.save`` raises ``OSError`` naming the path and leaves the old file intact
(:mod:`spec.state`).
"""

from __future__ import annotations

__all__ = [
    "BackendMismatchError",
    "CaptureError",
    "DivisionByZeroError",
    "DomainError",
    "GradspecError",
    "NonFiniteError",
    "OperandTypeError",
    "ResultOverflowError",
    "ShapeError",
]


class GradspecError(Exception):
    """Base class of every error gradspec raises on purpose."""


class OperandTypeError(GradspecError, TypeError):
    """A Value's data or an operand is not a real number (``Value("3")``)."""


class BackendMismatchError(GradspecError, TypeError):
    """Values of two different backends (or two tapes) were combined."""


class NonFiniteError(GradspecError, ValueError):
    """A NaN or an infinity was given where a finite float is required."""


class DomainError(GradspecError, ValueError):
    """An operation's input lies outside its domain (``log`` of a non-positive)."""


class DivisionByZeroError(DomainError, ZeroDivisionError):
    """Division by zero, or zero raised to a negative power."""


class ResultOverflowError(GradspecError, OverflowError):
    """An operation's exact result is too large for a finite float64."""


class ShapeError(GradspecError, ValueError):
    """Sizes disagree: MLP input width, loss lengths, layer sizes."""


class CaptureError(GradspecError, ValueError):
    """``compile_step`` cannot capture this training step for replay (see :mod:`spec.compile`)."""
