"""What the replay passes produce and its kernels run: a captured step as a :class:`Program`.

Layout. One float64 array ``val`` (and ``grad``) holds every slot: the parameters
(slots ``0..P-1``, in parameter order), the inputs (``n * nin``, row by row), the targets
(``n``), the constants, the constant 1.0 (``ONE``), then the nodes in forward order. Each
node has ``n`` consecutive rows of ``terms`` (uint32 pairs of slots, unsigned so that Numba
emits no negative-index wraparound in the hot loops: a DOT term's factors, a
SUM term's slot, a unary op's input, POW's base and exponent; ``ONE`` fills unused places);
``groups`` (int64, one row per group) holds ``kind, lo, hi, n, first term, mode, needs,
width``: its nodes are slots ``lo..hi-1``. ``mode`` says which factors of a DOT's products
need a grad: 0 the first only, 1 both, 2 look up ``needs``.

Lane units (the template pass). A group of ``width`` w > 1 holds units of w nodes, one per
sample, in consecutive slots (sample ``s`` at ``unit + s``); a unit has one row of terms,
sample 0's, and a term place that differs per sample holds its sample-0 slot with
:data:`LANE` set: sample ``s`` reads slot ``(place & SLOT) + s``. The inputs and targets are
laid out column by column (input ``j`` of sample ``s`` at ``first input + j * n + s``) so
that a column is such a run of slots too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spec.ops import FIRST_INTERNAL_CODE

__all__ = ["DOT", "DOT_PLAIN", "GROUP_COLUMNS", "LANE", "NO_NODE", "SLOT", "SUM", "Program"]

# --- kinds of fused node: numbered from spec.ops.FIRST_INTERNAL_CODE, apart from every op code ----
#: ``t0 + t1 + ...`` over plain terms
SUM = 100
#: ``b + a1*c1 + a2*c2 + ...``: a plain first term, then products
DOT_PLAIN = 101
#: ``a0*c0 + a1*c1 + ...``: products only
DOT = 102
if min(SUM, DOT_PLAIN, DOT) < FIRST_INTERNAL_CODE:
    raise ImportError("backends.numba._replay._program: a fused kind's number could be an op code's")
#: a term place that holds no node (the constant 1.0 in a product that is a plain term)
NO_NODE = -2
#: group columns
KIND, LO, HI, N, TERM, MODE, NEEDS, WIDTH = range(8)
GROUP_COLUMNS = 8
#: a term place's flag: the slot is sample 0's of a run, one slot per sample
LANE = 1 << 31
#: the slot bits of a term place
SLOT = LANE - 1


class Program(NamedTuple):
    """A captured step, laid out for the kernels (see the module docstring)."""

    val: np.ndarray  # float64, one per slot
    grad: np.ndarray  # float64, one per slot
    groups: np.ndarray  # int64 (groups, GROUP_COLUMNS)
    terms: np.ndarray  # uint32 (terms, 2)
    const: np.ndarray  # float64 per slot: POW_CONST's exponent
    needs: np.ndarray  # bool per slot
    #: int64: ``[P, first input slot, first target slot, root slot, n samples]``
    meta: np.ndarray
    #: float64 (3, P): new parameters, velocity or m, v (the update's scratch)
    scratch: np.ndarray
    #: float64: per-sample factors, transposed, for lane units' backward (_kernels._sums_across_terms)
    factors: np.ndarray
