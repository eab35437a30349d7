"""Native CPU kernels behind pure JAX functions (XLA FFI custom calls), with XLA fallbacks.

:func:`narrow_matmul` is the pool-scoring product ``X @ W``, :func:`pool_uncertainty`
the entropy / margin / least-confidence of every pool item in one fused pass; :func:`native_status`
says whether the native path is in use on this machine, and why not.
"""

from alband.kernels._build import NativeStatus, native_available, native_status
from alband.kernels.narrow_matmul import NATIVE_MIN_ROWS, narrow_matmul, uses_native_kernel
from alband.kernels.uncertainty import pool_uncertainty, xla_uncertainty

__all__ = ["NATIVE_MIN_ROWS", "NativeStatus", "narrow_matmul", "native_available", "native_status",
           "pool_uncertainty", "uses_native_kernel", "xla_uncertainty"]
