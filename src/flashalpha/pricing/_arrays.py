"""Argument handling shared by the pricing wrappers: numpy broadcasting to flat arrays.

Every kernel takes flat, C-contiguous float64 arrays of one common length (and a bool array for
the right), so that numba compiles each kernel once. Scalars and smaller arrays are broadcast
here; the cost is one copy of the broadcast inputs, small next to the pricing itself.
"""

from __future__ import annotations

import numpy as np


def flat_inputs(
    floats: tuple[object, ...], flags: tuple[object, ...] = ()
) -> tuple[tuple[int, ...], list[np.ndarray], list[np.ndarray]]:
    """Broadcast `floats` (as float64) and `flags` (as bool) to one shape; return it and the
    flattened contiguous arrays."""
    float_arrays = [np.asarray(value, dtype=np.float64) for value in floats]
    flag_arrays = [np.asarray(value).astype(np.bool_, copy=False) for value in flags]
    shape = np.broadcast_shapes(*(a.shape for a in float_arrays), *(a.shape for a in flag_arrays))
    return (
        shape,
        [_flat(a, shape) for a in float_arrays],
        [_flat(a, shape) for a in flag_arrays],
    )


def _flat(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if array.shape != shape:
        array = np.broadcast_to(array, shape)
    return np.ascontiguousarray(array).reshape(-1)


def shaped(result: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | float:
    """The flat kernel output in the broadcast shape; a Python float for scalar inputs."""
    if shape == ():
        return float(result[0])
    return result.reshape(shape)
