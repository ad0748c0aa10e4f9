"""A register-tiled multiply-accumulate: the lane kernels' matrix-shaped loops at full speed.

:func:`multiply_accumulate` adds, to every row of sums, a sequence of products, one product at a
time and in the given order, exactly as the plain loop

.. code-block:: python

    for r in range(len(c_rows)):
        for lane in range(lanes):
            sum_ = c[c_rows[r] + lane]
            for k in range(steps):
                sum_ = sum_ + a[a_rows[k] + lane] * b[b_rows[r] + k * b_step]
            c[c_rows[r] + lane] = sum_

adds them. Each sum still rounds after every product and after every addition (a multiply,
then an add: no fused multiply-add), so the result is that loop's bit for bit. What differs
is where the sums live: a tile of :data:`ROWS` rows by up to 32 lanes keeps its sums in vector
registers across all the steps, and each step loads the tile's row of ``a`` once for all its
rows. Numba's loop vectoriser keeps such sums in memory instead (a load and a store per few
additions), which is what bounded the lane kernels' sums before.

The tile's sums stay in registers until its last step, so no row of ``c`` may overlap a row of
``a`` or an entry of ``b`` that the same call reads: the callers' checks guarantee that (a
layer's sums never read its own outputs).

The vectors are LLVM's ``<8 x double>``; on a machine without 512-bit vectors LLVM splits
them, and the arithmetic is the same IEEE operations lane by lane.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.base import BaseContext
from numba.core.typing.context import Context
from numba.core.typing.templates import Signature
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._jit import jit_inline as _jit_inline
from backends.numba._replay._vector_ir import (
    DOUBLE,
    LANE_INDEX,
    Codegen,
    array_data,
    entry,
    index,
    intrinsic,
    vector_at,
)

__all__ = ["ROWS", "multiply_accumulate"]

#: the rows a tile holds: 4 rows by 4 vectors of 8 lanes is 16 vector sums, half the registers
ROWS = 4
_VECTORS, _LANES = 4, 8


@intrinsic(prefer_literal=True)
def _tile(
    typingctx: Context,
    c: types.Type,
    c_rows: types.Type,
    first_row: types.Type,
    a: types.Type,
    a_rows: types.Type,
    b: types.Type,
    b_rows: types.Type,
    b_step: types.Type,
    first_lane: types.Type,
    steps: types.Type,
    rows: types.IntegerLiteral,
    vectors: types.IntegerLiteral,
    width: types.IntegerLiteral,
) -> tuple[Signature, Codegen]:
    """:func:`multiply_accumulate` of rows ``first_row..first_row + rows - 1`` and lanes
    ``first_lane..first_lane + vectors * width - 1``: ``rows * vectors`` sums of ``width``
    lanes each, in registers across the steps. ``rows``, ``vectors``, ``width``: literals."""
    row_count, vector_count, lane_count = rows.literal_value, vectors.literal_value, width.literal_value
    signature = types.void(
        c, c_rows, first_row, a, a_rows, b, b_rows, b_step, first_lane, steps, rows, vectors, width
    )

    def codegen(
        context: BaseContext, builder: ir.IRBuilder, signature: Signature, args: Sequence[ir.Value]
    ) -> ir.Value:
        c_data, c_row_data, a_data, a_row_data, b_data, b_row_data = (
            array_data(context, builder, signature, args, i) for i in (0, 1, 3, 4, 5, 6)
        )
        row0, b_stride, lane0, step_count = args[2], args[7], args[8], args[9]
        vector = ir.VectorType(DOUBLE, lane_count)

        def broadcast(value: ir.Value) -> ir.Value:
            one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(LANE_INDEX, 0))
            zeros = ir.Constant(ir.VectorType(LANE_INDEX, lane_count), [0] * lane_count)
            return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined), zeros)

        c_starts = [builder.add(entry(builder, c_row_data, row0, r), lane0) for r in range(row_count)]
        b_starts = [entry(builder, b_row_data, row0, r) for r in range(row_count)]
        # allocas in the entry block: LLVM promotes them to registers
        sums = [[cgutils.alloca_once(builder, vector) for _ in range(vector_count)] for _ in range(row_count)]
        for r in range(row_count):
            for v in range(vector_count):
                place = vector_at(builder, c_data, builder.add(c_starts[r], index(v * lane_count)), vector)
                builder.store(builder.load(place, align=8), sums[r][v])
        with cgutils.for_range(builder, step_count) as loop:
            a_start = builder.add(builder.load(builder.gep(a_row_data, [loop.index])), lane0)
            factors = [
                builder.load(
                    vector_at(builder, a_data, builder.add(a_start, index(v * lane_count)), vector), align=8
                )
                for v in range(vector_count)
            ]
            b_offset = builder.mul(loop.index, b_stride)
            for r in range(row_count):
                weight = broadcast(builder.load(builder.gep(b_data, [builder.add(b_starts[r], b_offset)])))
                for v in range(vector_count):
                    product = builder.fmul(factors[v], weight)
                    builder.store(builder.fadd(builder.load(sums[r][v]), product), sums[r][v])
        for r in range(row_count):
            for v in range(vector_count):
                place = vector_at(builder, c_data, builder.add(c_starts[r], index(v * lane_count)), vector)
                builder.store(builder.load(sums[r][v]), place, align=8)
        return context.get_dummy_value()

    return signature, codegen


@_jit_inline
def _rows_of_lanes(
    c: NDArray[np.float64],
    c_rows: NDArray[np.int64],
    first_row: int,
    a: NDArray[np.float64],
    a_rows: NDArray[np.int64],
    b: NDArray[np.float64],
    b_rows: NDArray[np.int64],
    b_step: int,
    lanes: int,
    steps: int,
    rows: int,
) -> None:
    """:func:`multiply_accumulate` of ``rows`` rows from ``first_row`` (``rows``: a literal, so
    each call compiles its own tiles): 32 lanes a tile, then 8, then 1."""
    lane = 0
    while lane + _VECTORS * _LANES <= lanes:
        _tile(c, c_rows, first_row, a, a_rows, b, b_rows, b_step, lane, steps, rows, 4, 8)
        lane += _VECTORS * _LANES
    while lane + _LANES <= lanes:
        _tile(c, c_rows, first_row, a, a_rows, b, b_rows, b_step, lane, steps, rows, 1, 8)
        lane += _LANES
    while lane < lanes:
        _tile(c, c_rows, first_row, a, a_rows, b, b_rows, b_step, lane, steps, rows, 1, 1)
        lane += 1


@_jit(
    "void(float64[::1], int64[::1], float64[::1], int64[::1], float64[::1], int64[::1], int64, int64, int64)"
)
def multiply_accumulate(
    c: NDArray[np.float64],
    c_rows: NDArray[np.int64],
    a: NDArray[np.float64],
    a_rows: NDArray[np.int64],
    b: NDArray[np.float64],
    b_rows: NDArray[np.int64],
    b_step: int,
    lanes: int,
    steps: int,
) -> None:
    """``c[c_rows[r] + lane] += a[a_rows[k] + lane] * b[b_rows[r] + k * b_step]`` for every row
    ``r``, every ``lane < lanes``, the steps ``k = 0, 1, ..., steps - 1`` in that order, one
    rounding after each product and each addition: the plain loop of this module's docstring,
    bit for bit, in register tiles of :data:`ROWS` rows. No row of ``c`` may overlap what the
    call reads of ``a`` or ``b``."""
    row = 0
    while row + ROWS <= c_rows.shape[0]:
        _rows_of_lanes(c, c_rows, row, a, a_rows, b, b_rows, b_step, lanes, steps, ROWS)
        row += ROWS
    while row < c_rows.shape[0]:
        _rows_of_lanes(c, c_rows, row, a, a_rows, b, b_rows, b_step, lanes, steps, 1)
        row += 1
