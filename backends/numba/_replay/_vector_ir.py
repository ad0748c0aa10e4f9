"""The LLVM IR pieces the register kernels' intrinsics share (:mod:`._tiles`, :mod:`._transpose`)."""

from __future__ import annotations

from typing import Any

from llvmlite import ir

__all__ = ["DOUBLE", "LANE_INDEX", "array_data", "entry", "index", "vector_at"]

DOUBLE, INDEX, LANE_INDEX = ir.DoubleType(), ir.IntType(64), ir.IntType(32)


def index(value: int) -> ir.Constant:
    """An int64 constant: an offset into an array."""
    return ir.Constant(INDEX, value)


def array_data(context: Any, builder: Any, signature: Any, args: Any, position: int) -> Any:
    """The data pointer of the intrinsic's array argument at ``position``."""
    return context.make_array(signature.args[position])(context, builder, args[position]).data


def entry(builder: Any, data: Any, first: Any, offset: int) -> Any:
    """``data[first + offset]``, loaded."""
    return builder.load(builder.gep(data, [builder.add(first, index(offset))]))


def vector_at(builder: Any, data: Any, position: Any, vector: ir.VectorType) -> Any:
    """``data + position`` as a pointer to ``vector``: the vector of elements from there."""
    return builder.bitcast(builder.gep(data, [position]), vector.as_pointer())
