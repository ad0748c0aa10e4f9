"""The LLVM IR pieces the register kernels' intrinsics share (:mod:`._tiles`, :mod:`._transpose`),
and :func:`intrinsic`, which makes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

from llvmlite import ir
from numba.core.base import BaseContext
from numba.core.typing.templates import Signature

__all__ = ["DOUBLE", "LANE_INDEX", "Codegen", "array_data", "entry", "index", "intrinsic", "vector_at"]

#: an intrinsic's code generator: the LLVM IR of one call, from the values of its arguments
Codegen = Callable[[BaseContext, ir.IRBuilder, Signature, Sequence[ir.Value]], ir.Value]

if TYPE_CHECKING:
    #: an intrinsic's typing function: from the typing context and its arguments' Numba types,
    #: the call's signature and its code generator (or None: no such call)
    _Typing = Callable[..., tuple[Signature, Codegen] | None]

    class _Intrinsic(Protocol):
        """:func:`numba.extending.intrinsic`, typed: the intrinsic it makes is called (from a
        kernel) with the values whose Numba types its typing function takes, but not the typing
        context, which Numba's own type stubs count among its arguments."""

        @overload
        def __call__(self, func: _Typing, /) -> Callable[..., Any]: ...
        @overload
        def __call__(self, *, prefer_literal: bool = False) -> Callable[[_Typing], Callable[..., Any]]: ...

    intrinsic: _Intrinsic
else:
    from numba.extending import intrinsic

DOUBLE, INDEX, LANE_INDEX = ir.DoubleType(), ir.IntType(64), ir.IntType(32)


def index(value: int) -> ir.Constant:
    """An int64 constant: an offset into an array."""
    return ir.Constant(INDEX, value)


def array_data(
    context: BaseContext, builder: ir.IRBuilder, signature: Signature, args: Sequence[ir.Value], position: int
) -> ir.Value:
    """The data pointer of the intrinsic's array argument at ``position``."""
    return context.make_array(signature.args[position])(context, builder, args[position]).data


def entry(builder: ir.IRBuilder, data: ir.Value, first: ir.Value, offset: int) -> ir.Value:
    """``data[first + offset]``, loaded."""
    return builder.load(builder.gep(data, [builder.add(first, index(offset))]))


def vector_at(builder: ir.IRBuilder, data: ir.Value, position: ir.Value, vector: ir.VectorType) -> ir.Value:
    """``data + position`` as a pointer to ``vector``: the vector of elements from there."""
    return builder.bitcast(builder.gep(data, [position]), vector.as_pointer())
