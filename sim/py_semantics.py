"""Python's float semantics in compiled code, for kernels that must give the numbers the Python
formulas give, bit for bit.

- `py_min` and `py_max`: Python's `min(a, b)` and `max(a, b)` (the first of equals: max(0.0, -0.0)
  is 0.0; numba's builtins may return either).
- `libm_pow`: the C library's `pow`, which Python's float `**` calls. numba lowers `x ** 2.0`
  and `math.pow(x, 2.0)` to the compiler's pow, which folds a constant exponent of 2 into `x * x`;
  glibc's `pow(x, 2.0)` rounds differently in about 0.08 % of cases (measured on 2 million random
  numbers), so a kernel squaring that way leaves a car a rounding step away from where Python put it.
  Declared `nobuiltin`, the call is left to the library, as Python's is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@numba.njit(cache=True, nogil=True)
def py_min(a: float, b: float) -> float:
    """Python's min(a, b): a unless b is smaller."""
    return b if b < a else a


@numba.njit(cache=True, nogil=True)
def py_max(a: float, b: float) -> float:
    """Python's max(a, b): a unless b is larger."""
    return b if b > a else a


@intrinsic
def _libm_pow(typingctx: object, x: types.Type, y: types.Type) -> tuple[object, object] | None:
    """`libm_pow`'s code: a call of the C library's `pow`, which the compiler may not replace."""
    if x != types.float64 or y != types.float64:
        return None  # float64 only (`2.0`, not `2`): no casts to get wrong
    signature = types.float64(types.float64, types.float64)

    def codegen(context: object, builder: ir.IRBuilder, sig: object, args: list[ir.Value]) -> ir.Value:
        double = ir.DoubleType()
        pow_fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(double, [double, double]), "pow"
        )
        pow_fn.attributes.add("nobuiltin")  # not the compiler's pow: no folding of pow(x, 2.0) into x * x
        return builder.call(pow_fn, args)

    return signature, codegen


libm_pow = cast(Callable[[float, float], float], _libm_pow)
"""pow(x, y) of two float64 by the C library's `pow`, as Python's `x ** y` computes it (compiled code
only; `_libm_pow` typed for the callers)."""
