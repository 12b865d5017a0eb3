"""Training steps (gradkernels._steps): forward and backward of one hidden layer over the batch x
width x activation matrix, the scikit-learn-sized MLP and the seed network, float32 — the entrants of `bench
--layers`: each backend at the default thread count and with its kernels on one thread ("-1t"),
the step written by hand in NumPy, PyTorch eager, and a layer's three GEMMs alone.
GRADKERNELS_BENCH_SIZES=small narrows the matrix to batches 32 and 200 at width 64."""

import numpy as np

import gradkernels as gk
from gradkernels import _bench, _steps

from ._common import SIZES, _torch

ENTRANTS = ["numba", "c", "numba-1t", "c-1t", "numpy-by-hand", "torch"]
SMALL = "small" in SIZES and len(SIZES) == 1
BATCHES = [32, 200] if SMALL else list(_steps.BATCHES)
WIDTHS = [64] if SMALL else list(_steps.WIDTHS)


def _call(entrant, step, activation, shape):
    """The entrant's call from bench's entrants of that cell, or NotImplementedError (asv: skip)."""
    torch = _torch() if entrant == "torch" else None
    if entrant == "torch" and torch is None:
        raise NotImplementedError("PyTorch is not installed")
    backend = entrant.removesuffix("-1t")
    ours = [backend] if backend in gk.backends() else []
    if ours and not gk.backends()[backend]["available"]:
        raise NotImplementedError(gk.backends()[backend]["reason"])
    entrants = _bench.step_entrants(step, activation, shape, np.dtype(np.float32), ours, torch,
                                    np.random.default_rng(0))
    call = entrants[{"numpy-by-hand": "numpy"}.get(entrant, entrant.replace("-1t", " 1t"))]
    call()  # compiles a Numba kernel, if any, outside the timings
    return call


class LayerStep:
    params = [ENTRANTS + ["gemms"], list(_steps.ACTIVATIONS), BATCHES, WIDTHS]
    param_names = ["entrant", "activation", "batch", "width"]
    timeout = 600

    def setup(self, entrant, activation, batch, width):
        self.call = _call(entrant, "layer", activation, (batch, width))

    def time_step(self, entrant, activation, batch, width):
        self.call()


class MLPStep:
    """64 -> 256 -> 256 -> 10 with softmax + cross-entropy, batch 200."""

    params = [ENTRANTS, ["relu", "sigmoid"]]
    param_names = ["entrant", "activation"]
    timeout = 600

    def setup(self, entrant, activation):
        self.call = _call(entrant, "mlp", activation, (_steps.MLP_BATCH, *_steps.MLP_WIDTHS))

    def time_step(self, entrant, activation):
        self.call()


class SeedStep:
    """The seed network 3 -> 10 -> 6 -> 3 (ReLU, softmax + cross-entropy) at its batches."""

    params = [ENTRANTS, list(_steps.SEED_BATCHES)]
    param_names = ["entrant", "batch"]
    timeout = 600

    def setup(self, entrant, batch):
        self.call = _call(entrant, "mlp", "relu", (batch, *_steps.SEED_WIDTHS))

    def time_step(self, entrant, batch):
        self.call()
