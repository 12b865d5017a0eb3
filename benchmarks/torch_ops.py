"""gradkernels.torch against plain PyTorch, float32 — the cells of `bench --torch-ops`: forward +
backward of the losses, activations and linear layers at their large sizes, the losses' forward
under torch.no_grad() (evaluation), and one forward call on (32, 10) tensors (through our NumPy
API, through gradkernels.torch without and with an input requiring a gradient, in PyTorch both
ways). GRADKERNELS_BENCH_SIZES=small runs the large cells at (64, 50) (a layer's at 64 x 50 ->
40). Skipped where PyTorch is not installed."""

from gradkernels import _torchbench

from ._common import SIZES, _torch

SMALL = "small" in SIZES and len(SIZES) == 1
_LARGE = ([(name, (64, 50, 40)[:len(shape)]) for name, shape in dict(_torchbench.LARGE).items()] if SMALL
          else _torchbench.LARGE)
# "function rowsxcolumns" -> (function, shape)
CELLS = {f"{name} {'x'.join(map(str, shape))}": (name, shape) for name, shape in _LARGE}


def _torch_or_skip():
    torch = _torch()
    if torch is None:
        raise NotImplementedError("PyTorch is not installed")
    return torch


class TorchForwardBackward:
    params = [["gradkernels.torch", "torch"], list(CELLS)]
    param_names = ["entrant", "cell"]
    timeout = 600

    def setup(self, entrant, cell):
        torch = _torch_or_skip()
        entrants = _torchbench.forward_backward_entrants(torch, *CELLS[cell], torch.Generator().manual_seed(0))
        self.call = entrants[entrant]
        self.call()  # compiles a Numba kernel, if any, outside the timings

    def time_forward_backward(self, entrant, cell):
        self.call()


class TorchEvaluation:
    params = [["gradkernels.torch", "torch"], [cell for cell, (name, _) in CELLS.items() if name in _torchbench.LOSSES]]
    param_names = ["entrant", "cell"]
    timeout = 600

    def setup(self, entrant, cell):
        torch = _torch_or_skip()
        self.call = _torchbench.forward_backward_entrants(torch, *CELLS[cell], torch.Generator().manual_seed(0),
                                                          evaluation=True)[entrant]
        self.call()

    def time_forward_no_grad(self, entrant, cell):
        self.call()


class TorchCallCost:
    params = [["numpy API", "gradkernels.torch", "gradkernels.torch, recording", "torch", "torch, recording"],
              [name for name, _ in _torchbench.TINY]]
    param_names = ["entrant", "function"]

    def setup(self, entrant, function):
        torch = _torch_or_skip()
        shape = dict(_torchbench.TINY)[function]
        self.call = _torchbench.call_entrants(torch, function, shape, torch.Generator().manual_seed(0))[entrant]
        self.call()

    def time_call(self, entrant, function):
        self.call()
