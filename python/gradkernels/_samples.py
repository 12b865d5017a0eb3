"""Inputs for an op made from its declaration (`_catalog`): arrays of the declared values and
shapes, for dimension sizes given by name. What the benchmarks time and what tests call ops with."""

import numpy as np

from ._catalog import Arg, Op


def shape_of(arg: Arg, dims: dict, first: np.ndarray | None = None) -> tuple[int, ...]:
    """The shape of `arg` for `dims`: "..." is a tuple of axes, any other name one axis; "bits" the
    bytes that pack one bit per element of the op's first array."""
    if arg.shape == ("bits",):
        return ((first.size + 7) // 8,)
    return tuple(axis for name in arg.shape for axis in (dims[name] if name == "..." else (dims[name],)))


# Each kind of float values, from a generator and a shape
_FLOAT_VALUES = {
    "any": lambda rng, shape: 3.0 * rng.standard_normal(shape),
    "summed": lambda rng, shape: rng.standard_normal(shape),
    "relu_output": lambda rng, shape: np.maximum(3.0 * rng.standard_normal(shape), 0),
    "tanh": lambda rng, shape: np.tanh(3.0 * rng.standard_normal(shape)),
    "probability": lambda rng, shape: rng.uniform(size=shape),
    "log_probability": lambda rng, shape: np.log(rng.uniform(size=shape)),
}


def _values(arg: Arg, shape: tuple, dims: dict, dtype: np.dtype, rng, first):
    """Values of the kind `arg` declares, drawn only with `standard_normal`, `uniform(size=)` and
    `integers(low, high, size)`, so that a stand-in generator can replace `rng`."""
    kind = arg.values
    if kind in ("labels", "targets"):
        return rng.integers(0, dims["C"], shape)
    if kind == "mask":
        return np.packbits(rng.standard_normal(first.size) > 0, bitorder="little")
    if kind not in _FLOAT_VALUES:
        raise ValueError(f"{arg.name}: no values of kind {kind!r}")
    return _FLOAT_VALUES[kind](rng, shape).astype(dtype)


def arguments(op: Op, dims: dict, dtype, rng) -> tuple:
    """The op's array arguments, in order, for dimension sizes `dims` (e.g. {"...": (32,), "C": 10})."""
    dtype = np.dtype(dtype)
    made = []
    for arg in op.arrays:
        first = made[0] if made else None
        made.append(_values(arg, shape_of(arg, dims, first), dims, dtype, rng, first))
    return tuple(made)


def flat_dims(dims: dict) -> tuple[int, ...]:
    """The dimension sizes one after another, in the order `dims` names them: (rows..., classes) of
    a row op, (N, D, H) of a layer; what a table shows as the op's shape."""
    return tuple(axis for size in dims.values() for axis in (size if isinstance(size, tuple) else (size,)))


def small(op: Op) -> dict:
    """Dimension sizes for a small call of `op` whose result is (3, 4) wherever it has one array
    result: 3 rows of 4 elements or classes; a layer of 3 rows, 2 inputs and 4 outputs."""
    names = {name for arg in op.arrays for name in arg.shape}
    return {"...": (3,) if "C" in names else (3, 4), "C": 4, "N": 3, "D": 2, "H": 4}
