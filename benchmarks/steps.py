"""Training steps (gradkernels._steps): forward and backward of one hidden layer over the batch x
width x activation matrix, and the scikit-learn-sized MLP, float32. Entrants: each backend at the
default thread count and with its kernels on one thread ("-1t"), the step written by hand in
NumPy, PyTorch eager, and the layer's three GEMMs alone. GRADKERNELS_BENCH_SIZES=small narrows the
matrix to batches 32 and 200 at width 64."""

import numpy as np

import gradkernels as gk
from gradkernels import _steps

from ._common import SIZES, _torch

ENTRANTS = ["numba", "c", "numba-1t", "c-1t", "numpy-by-hand", "torch"]
SMALL = "small" in SIZES and len(SIZES) == 1
BATCHES = [32, 200] if SMALL else list(_steps.BATCHES)
WIDTHS = [64] if SMALL else list(_steps.WIDTHS)


def _ours(entrant):
    name, _, one_thread = entrant.partition("-")
    if not gk.backends()[name]["available"]:
        raise NotImplementedError(gk.backends()[name]["reason"])
    return gk.backend(name), bool(one_thread)


class _Step:
    timeout = 600

    def _bind(self, entrant, ours, by_hand, peer):
        """The call to time: ours(backend) for our backends, by_hand() or peer(torch) for the others."""
        if entrant == "numpy-by-hand":
            return by_hand()
        if entrant == "torch":
            torch = _torch()
            if torch is None:
                raise NotImplementedError("PyTorch is not installed")
            return peer(torch)
        backend, one_thread = _ours(entrant)
        self.threads = 1 if one_thread else gk.get_num_threads()
        return ours(backend)

    def teardown(self, *params):
        if hasattr(self, "default_threads"):
            gk.set_num_threads(self.default_threads)

    def _start(self):
        if hasattr(self, "threads"):
            self.default_threads = gk.get_num_threads()
            gk.set_num_threads(self.threads)
        self.call()  # compiles a Numba kernel, if any, outside the timings


class LayerStep(_Step):
    params = [ENTRANTS + ["gemms"], list(_steps.ACTIVATIONS), BATCHES, WIDTHS]
    param_names = ["entrant", "activation", "batch", "width"]

    def setup(self, entrant, activation, batch, width):
        inputs = _steps.layer_inputs(np.random.default_rng(0), np.float32, batch, width)
        if entrant == "gemms":
            self.call = _steps.gemms(inputs[0], inputs[1], inputs[3])
        else:
            self.call = self._bind(entrant, lambda b: _steps.layer_step(b, activation, *inputs),
                                   lambda: _steps.numpy_layer_step(activation, *inputs),
                                   lambda torch: _steps.torch_layer_step(torch, activation, *inputs))
        self._start()

    def time_step(self, entrant, activation, batch, width):
        self.call()


class MLPStep(_Step):
    """64 -> 256 -> 256 -> 10 with softmax + cross-entropy, batch 200."""

    params = [ENTRANTS, ["relu", "sigmoid"]]
    param_names = ["entrant", "activation"]

    def setup(self, entrant, activation):
        inputs = _steps.mlp_inputs(np.random.default_rng(0), np.float32)
        self.call = self._bind(entrant, lambda b: _steps.mlp_step(b, activation, *inputs),
                               lambda: _steps.numpy_mlp_step(activation, *inputs),
                               lambda torch: _steps.torch_mlp_step(torch, activation, *inputs))
        self._start()

    def time_step(self, entrant, activation):
        self.call()
