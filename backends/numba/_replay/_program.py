"""What the replay passes produce and its kernels run: a captured step as a :class:`Program`.

Layout. One float64 array ``val`` (and ``grad``) holds every slot: the parameters
(slots ``0..P-1``, in parameter order), the inputs (``n * nin``, row by row), the targets
(``n``), the constants, the constant 1.0 (``ONE``), then the nodes in forward order. Each
node has ``n`` consecutive rows of ``terms`` (uint32 pairs of slots, unsigned so that Numba
emits no negative-index wraparound in the hot loops: a DOT term's factors, a
SUM term's slot, a unary op's input, POW's base and exponent; ``ONE`` fills unused places);
``groups`` (int64, one row per group) holds ``kind, lo, hi, n, first term, mode, needs,
width, distinct``: its nodes are slots ``lo..hi-1``. ``mode`` says which factors of a DOT's
products need a grad: the first only (:data:`FIRST_FACTOR`), both, or look up ``needs``. ``distinct`` (lane
groups) is 1 when every shared slot the group pushes into is pushed by one place of one
unit, as a layer's weights are: each such slot's sum over samples is then on its own, and
the kernels may run several side by side.

Lane units (the template pass). A group of ``width`` w > 1 holds units of w nodes, one per
sample, in consecutive slots (sample ``s`` at ``unit + s``); a unit has one row of terms,
sample 0's, and a term place that differs per sample holds its sample-0 slot with
:data:`LANE` set: sample ``s`` reads slot ``(place & SLOT) + s``. The inputs and targets are
laid out column by column (input ``j`` of sample ``s`` at ``first input + j * n + s``) so
that a column is such a run of slots too.

Segments. Consecutive groups of one width form a segment. The kernels may run a segment of
lane groups on blocks of samples (one per thread): every group of the segment on each
block. So a lane unit reads slots of its own sample, or slots from before its segment.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spec.ops import FIRST_INTERNAL_CODE

__all__ = [
    "BOTH_FACTORS",
    "DISTINCT",
    "DOT",
    "DOT_PLAIN",
    "FACTORS_BY_NEEDS",
    "FIRST_FACTOR",
    "FOLD_END",
    "FOLD_START",
    "FORWARD_FAILED",
    "GROUP_COLUMNS",
    "LANE",
    "LINE",
    "NO_NODE",
    "PLAN_COLUMNS",
    "PUSHING",
    "SHARED",
    "SLOT",
    "STEPPED",
    "SUM",
    "UPDATE_FAILED",
    "Program",
    "Slots",
    "cache_aligned_zeros",
]

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
KIND, LO, HI, N, TERM, MODE, NEEDS, WIDTH, DISTINCT = range(9)
#: a DOT group's MODE: which factors of its products need a grad
FIRST_FACTOR, BOTH_FACTORS, FACTORS_BY_NEEDS = range(3)
#: what :func:`~._kernels.run` returns first: the step ran; forward failed; the update would fail
STEPPED, FORWARD_FAILED, UPDATE_FAILED = range(3)
GROUP_COLUMNS = 9
#: plan columns (the plan pass, :mod:`._plan`)
FOLD_START, FOLD_END, PUSHING, SHARED = range(4)
PLAN_COLUMNS = 4
#: a term place's flag: the slot is sample 0's of a run, one slot per sample
LANE = 1 << 31
#: the slot bits of a term place
SLOT = LANE - 1
#: float64 slots in a cache line: the nodes start a line, so with ``n`` a multiple of it every
#: lane unit does, and threads that run blocks of a multiple of it samples never share a line
LINE = 8


def cache_aligned_zeros(size: int) -> np.ndarray:
    """``np.zeros(size)`` whose first element starts a 64-byte cache line."""
    spare = np.zeros(size + LINE, np.float64)
    skip = (-spare.ctypes.data % 64) // 8
    return spare[skip : skip + size]


class Units(NamedTuple):
    """What the schedule orders: units of one fused node, or lane units of one per sample.

    Unit ``u`` is fused node ``representative[u]`` (sample 0's for a lane unit), ``width[u]``
    of them: fused nodes ``lane_nodes[lane_first[u]:lane_first[u] + width[u]]``, sample by sample.
    """

    representative: np.ndarray
    width: np.ndarray
    lane_first: np.ndarray
    lane_nodes: np.ndarray

    @classmethod
    def single(cls, n_fused: int) -> Units:
        """Every fused node a unit of its own."""
        each = np.arange(n_fused, dtype=np.int64)
        return cls(each, np.ones(n_fused, np.int64), each, each)


class Slots(NamedTuple):
    """``Program.meta`` by name: where each kind of slot starts."""

    #: how many parameters: slots ``0..parameters-1``
    parameters: int
    first_input: int
    first_target: int
    #: the loss's slot
    root: int
    samples: int
    first_constant: int


class Program(NamedTuple):
    """A captured step, laid out for the kernels (see the module docstring)."""

    val: np.ndarray  # float64, one per slot
    grad: np.ndarray  # float64, one per slot
    groups: np.ndarray  # int64 (groups, GROUP_COLUMNS)
    terms: np.ndarray  # uint32 (terms, 2)
    const: np.ndarray  # float64 per slot: POW_CONST's exponent
    needs: np.ndarray  # bool per slot
    #: int64: ``[P, first input slot, first target slot, root slot, n samples, first constant slot]``
    meta: np.ndarray
    #: float64 (3, P): new parameters, velocity or m, v (the update's scratch)
    scratch: np.ndarray
    #: int64 (terms, PLAN_COLUMNS): how the lane kernels run each unit (the plan pass, ``_plan``)
    plan: np.ndarray = np.zeros((0, PLAN_COLUMNS), np.int64)

    @property
    def slots(self) -> Slots:
        """``meta`` by name."""
        return Slots(*self.meta.tolist())

    def factors_scratch(self, threads: int) -> np.ndarray:
        """Room for each of ``threads`` threads to transpose a lane unit's per-sample factors, or
        a lane group's grads (``_lanes._sums_over_samples``, ``_lanes._sums_across_units``)."""
        terms = self.groups[:, WIDTH] * self.groups[:, N]
        most = int(np.maximum(terms, self.groups[:, HI] - self.groups[:, LO]).max(initial=1))
        # each thread's room starts a cache line: the tiles' vectors then never straddle two
        # (a third slower on this machine when they did)
        return cache_aligned_zeros(threads * (-(-most // LINE) * LINE))
