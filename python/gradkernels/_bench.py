"""`python -m gradkernels bench`: every op on every backend (and PyTorch when installed), side by
side on the same arrays, as a table of medians, speedups over NumPy and memory bandwidth.

Method: the entrants of a case (the backends, PyTorch) are timed round-robin, the first one
rotating each repetition, after warm-up calls (which also compile the Numba kernels); a call
shorter than MIN_SAMPLE_SECONDS is timed as a loop of that many calls; the garbage collector is off
while timing. Results are fresh arrays, as in a user's default call. The copy
bandwidth, measured first, is that of copying 64 MiB into a fresh array with one thread per core.
"""

import dataclasses
import gc
import math
import sys
import threading
import time
import types
from typing import Callable

import numpy as np

from . import _backends, _catalog, _samples, _steps, _threads
from ._dispatch import backend as bind
from ._dispatch import public_ops

SIZES = _catalog.SIZE_CLASSES
# The entrant that runs each op's idiom (the plain NumPy its declaration names): what "x numpy" divides by.
PLAIN_NUMPY = "plain numpy"
COPY_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class Case:
    """An op at one size: its inputs (made from the op's declaration) and the calls timed on them."""

    op: str
    dims: dict  # the size of each dimension the op's declaration names
    torch_call: Callable | None  # (*inputs) -> the op's result through PyTorch, if it has the op
    idiom: Callable  # (*inputs) -> the same in the plain NumPy a user would write for it (as the op declares it)

    @property
    def shape(self) -> tuple[int, ...]:
        return _samples.flat_dims(self.dims)

    def inputs(self, rng, dtype) -> tuple:
        return _samples.arguments(_catalog.OP[self.op], self.dims, dtype, rng)

    def call(self, ops, *inputs):
        """The op through `ops` (a backend's ops, or the module's)."""
        return getattr(ops, self.op)(*inputs)

    def bytes_moved(self, inputs) -> int | None:
        """The bytes the op must read and write at the least: its float arrays of the first input's
        shape and the result of that shape (None for the linear layers, which the GEMMs bound)."""
        declared = _catalog.OP[self.op]
        if declared.family == "linear":
            return None
        first = inputs[0]
        read = sum(arg.is_float and a.shape == first.shape for arg, a in zip(declared.arrays, inputs))
        return (read + 1) * first.nbytes


def _torch_loss(torch, name, z, target):
    """(loss, gradient) of torch.nn.functional.<name>(z, target): the forward and backward a
    fused loss of ours replaces."""
    logits = torch.from_numpy(z).requires_grad_()
    loss = getattr(torch.nn.functional, name)(logits, torch.from_numpy(target))
    loss.backward()
    return loss, logits.grad


def _cross_entropy_idiom(z, labels):
    """Mean softmax cross-entropy and its gradient, max-shifted, as a NumPy user writes it."""
    rows = np.arange(z.shape[0])
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    total = e.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(total[:, 0]) + m[:, 0] - z[rows, labels])
    p = e / total
    p[rows, labels] -= 1
    p /= z.shape[0]
    return loss, p


def _sigmoid_bce_idiom(z, t):
    loss = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    return loss, (1 / (1 + np.exp(-z)) - t) / z.size


def _mse_idiom(p, y):
    d = p - y
    return np.mean(d * d), 2 * d / d.size


def _softmax_idiom(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax_idiom(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _relu_layer_backward_idiom(da, a, x, w):
    dz = da * (a > 0)
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)


def _classifier_idiom(x, w, b, labels):
    loss, g = _cross_entropy_idiom(x @ w + b, labels)
    return loss, g @ w.T, x.T @ g, g.sum(axis=0)


# Each op's idiom (its declaration's text) as code, on the op's inputs.
IDIOMS = {
    "relu": lambda x: np.maximum(x, 0),
    "relu_backward": lambda dy, y: dy * (y > 0),
    "relu_with_mask": lambda x: (np.maximum(x, 0), np.packbits(x > 0, bitorder="little")),
    "relu_backward_from_mask": lambda dy, m: dy * np.unpackbits(m, count=dy.size, bitorder="little").reshape(dy.shape),
    "leaky_relu": lambda x: np.maximum(x, 0.01 * x),
    "leaky_relu_backward": lambda dy, x: np.where(x > 0, dy, 0.01 * dy),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "sigmoid_backward": lambda dy, y: dy * y * (1 - y),
    "tanh": np.tanh,
    "tanh_backward": lambda dy, y: dy * (1 - y * y),
    "softmax": _softmax_idiom,
    "softmax_backward": lambda dp, p: p * (dp - (dp * p).sum(axis=-1, keepdims=True)),
    "log_softmax": _log_softmax_idiom,
    "log_softmax_backward": lambda dl, lp: dl - np.exp(lp) * dl.sum(axis=-1, keepdims=True),
    "softmax_cross_entropy": _cross_entropy_idiom,
    "sigmoid_binary_cross_entropy": _sigmoid_bce_idiom,
    "mse": _mse_idiom,
    "linear": lambda x, w, b: x @ w + b,
    "linear_relu": lambda x, w, b: np.maximum(x @ w + b, 0),
    "linear_backward": lambda dy, x, w: (dy @ w.T, x.T @ dy, dy.sum(axis=0)),
    "linear_relu_backward": _relu_layer_backward_idiom,
    "linear_cross_entropy": _classifier_idiom,
}


def torch_calls(torch) -> dict[str, Callable | None]:
    """Each op's PyTorch peer on the op's inputs (None where PyTorch has none, or is not installed)."""
    if torch is None:
        return dict.fromkeys(_catalog.OP_NAMES)
    t, aten, F = torch.from_numpy, torch.ops.aten, torch.nn.functional

    def relu_layer_backward(da, a, x, w):
        dz = aten.threshold_backward(t(da), t(a), 0)
        return dz @ t(w).T, t(x).T @ dz, dz.sum(0)

    def classifier(x, w, bias, labels):
        params = [t(a).requires_grad_() for a in (x, w, bias)]
        loss = F.cross_entropy(torch.addmm(params[2], params[0], params[1]), t(labels))
        loss.backward()
        return (loss, *(p.grad for p in params))

    return {
        "relu": lambda x: torch.relu(t(x)),
        "relu_backward": lambda dy, y: aten.threshold_backward(t(dy), t(y), 0),
        "relu_with_mask": None,
        "relu_backward_from_mask": None,
        "leaky_relu": lambda x: F.leaky_relu(t(x)),
        "leaky_relu_backward": lambda dy, x: aten.leaky_relu_backward(t(dy), t(x), 0.01, False),
        "sigmoid": lambda x: torch.sigmoid(t(x)),
        "sigmoid_backward": lambda dy, y: aten.sigmoid_backward(t(dy), t(y)),
        "tanh": lambda x: torch.tanh(t(x)),
        "tanh_backward": lambda dy, y: aten.tanh_backward(t(dy), t(y)),
        "softmax": lambda z: torch.softmax(t(z), -1),
        "softmax_backward": lambda dp, p: aten._softmax_backward_data(t(dp), t(p), -1, t(p).dtype),
        "log_softmax": lambda z: torch.log_softmax(t(z), -1),
        "log_softmax_backward": lambda dl, lp: aten._log_softmax_backward_data(t(dl), t(lp), -1, t(lp).dtype),
        "softmax_cross_entropy": lambda z, y: _torch_loss(torch, "cross_entropy", z, y),
        "sigmoid_binary_cross_entropy": lambda z, y: _torch_loss(torch, "binary_cross_entropy_with_logits", z, y),
        "mse": lambda p, y: _torch_loss(torch, "mse_loss", p, y),
        "linear": lambda x, w, bias: torch.addmm(t(bias), t(x), t(w)),
        "linear_relu": lambda x, w, bias: torch.relu(torch.addmm(t(bias), t(x), t(w))),
        "linear_backward": lambda dy, x, w: (t(dy) @ t(w).T, t(x).T @ t(dy), t(dy).sum(0)),
        "linear_relu_backward": relu_layer_backward,
        "linear_cross_entropy": classifier,
    }


def cases(torch) -> dict[str, Callable[[str], Case]]:
    """op -> size name -> its Case."""
    peers = torch_calls(torch)
    return {op.name: (lambda size, op=op: Case(op.name, op.sizes[size], peers[op.name], IDIOMS[op.name]))
            for op in _catalog.OPS}


OPS = _catalog.OP_NAMES


# A timed sample is at least this long: calls faster than that are timed in loops of several, so
# that a microsecond op's median is not one timer tick and one scheduler hiccup (timeit's autorange).
MIN_SAMPLE_SECONDS = 2e-3


def _round_robin(entrants: dict[str, Callable], repeat: int, warmup: int, *, min_sample: float = MIN_SAMPLE_SECONDS,
                 settle: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each entrant, timed in turns; `settle` seconds of sleep before
    each sample let the previous entrant's idle threads stop spinning."""
    loops = {}
    for name, fn in entrants.items():
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        fn()
        loops[name] = max(1, math.ceil(min_sample / max(time.perf_counter() - start, 1e-9)))
    names = list(entrants)
    times = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for rep in range(repeat):
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                fn, n = entrants[name], loops[name]
                if settle:
                    time.sleep(settle)
                start = time.perf_counter()
                for _ in range(n):
                    fn()
                times[name].append((time.perf_counter() - start) / n)
    finally:
        gc.enable()
    return {name: float(np.median(t)) for name, t in times.items()}


def copy_bandwidth(threads: int, repeat: int = 15) -> float:
    """Bytes read plus written per second copying 64 MiB into a fresh array, one thread per core
    (NumPy's copy releases the GIL)."""
    src = np.ones(COPY_BYTES // 8)
    bounds = np.linspace(0, src.size, threads + 1).astype(int)

    def fresh_copy():
        dst = np.empty_like(src)
        parts = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b])) for a, b in zip(bounds, bounds[1:])]
        for part in parts:
            part.start()
        for part in parts:
            part.join()
        return dst

    seconds = _round_robin({"copy": fresh_copy}, repeat, warmup=3)["copy"]
    return 2 * src.nbytes / seconds


def progress(done: int, total: int, label: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<45}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _torch():
    """PyTorch on as many threads as our kernels, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(_threads.get_num_threads())
    return torch


def run(ops, sizes, dtypes, backends, *, repeat: int, warmup: int, with_torch: bool, with_auto: bool,
        seed: int = 0) -> dict:
    """Every case measured; the dict that --json writes. `with_auto` adds the module-level ops under
    "auto" (the tuned choice per op, dtype and size) as an entrant."""
    torch = _torch() if with_torch else None
    all_cases = cases(torch)
    bound = {name: bind(name) for name in backends}
    if with_auto:
        bound["auto"] = types.SimpleNamespace(**public_ops())
    bandwidth = copy_bandwidth(_threads.get_num_threads())
    plan = [(op, size, dtype) for op in ops for size in sizes for dtype in dtypes]
    rows = []
    for k, (op, size, dtype) in enumerate(plan):
        progress(k, len(plan), f"{op} {size} {dtype}")
        case = all_cases[op](size)
        inputs = case.inputs(np.random.default_rng(seed), dtype)
        entrants = {name: (lambda b=b: case.call(b, *inputs)) for name, b in bound.items()}
        entrants[PLAIN_NUMPY] = lambda: case.idiom(*inputs)
        if torch is not None and case.torch_call is not None:
            entrants["torch"] = lambda: case.torch_call(*inputs)
        with _backends.use_backend("auto"):  # what the module-level ops (the "auto" entrant) follow
            medians = _round_robin(entrants, repeat, warmup)
        nbytes = case.bytes_moved(inputs)
        rows.append({"op": op, "size": size, "shape": list(case.shape), "dtype": dtype, "seconds": medians,
                     "bytes": nbytes})
    progress(len(plan), len(plan), "done")
    return {
        "copy_bandwidth_bytes_per_second": bandwidth,
        "threads": _threads.get_num_threads(),
        "repeat": repeat,
        "warmup": warmup,
        "rows": rows,
    }


def best_backend(row: dict) -> str:
    """The fastest gradkernels backend of a row (not PyTorch, not "auto", which is one of them)."""
    ours = {name: s for name, s in row["seconds"].items() if name in _backends.NAMES}
    return min(ours, key=ours.get)


def table(result: dict, *, markdown: bool = False) -> str:
    """The side-by-side table: ms per entrant, the best gradkernels backend's speedup over the
    plain NumPy of the op (named under the table), its bandwidth against the copy bandwidth, and
    "auto"'s time over the best one's; aligned text, or a Markdown table."""
    entrants = list(dict.fromkeys(name for row in result["rows"] for name in row["seconds"]))
    limit = result["copy_bandwidth_bytes_per_second"]
    with_auto = "auto" in entrants
    header = ["op", "shape", "dtype", *(f"{name} ms" for name in entrants), "best", "x numpy", "GB/s", "% copy"]
    header += ["auto/best"] if with_auto else []
    lines = []
    for row in result["rows"]:
        seconds = row["seconds"]
        best = best_backend(row)
        cells = [row["op"], "x".join(map(str, row["shape"])), row["dtype"]]
        cells += [_milliseconds(seconds[name]) if name in seconds else "-" for name in entrants]
        cells += [best, f"{seconds[PLAIN_NUMPY] / seconds[best]:.2f}" if PLAIN_NUMPY in seconds else "-"]
        if row["bytes"]:
            rate = row["bytes"] / seconds[best]
            cells += [f"{rate / 1e9:.1f}", f"{100 * rate / limit:.0f}%"]
        else:
            cells += ["-", "-"]
        if with_auto:
            cells.append(f"{seconds['auto'] / seconds[best]:.2f}")
        lines.append(cells)
    ops = dict.fromkeys(row["op"] for row in result["rows"])
    legend = [f"x numpy: over {PLAIN_NUMPY}, the NumPy a user writes for the op:"]
    legend += [f"  {op}: {_catalog.OP[op].idiom}" for op in ops]
    return _render(header, lines, markdown) + "\n\n" + "\n".join(legend)


def _milliseconds(seconds: float) -> str:
    """Milliseconds to three decimals, or to three significant digits below one."""
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms >= 1 else f"{ms:.3g}"


def _render(header: list[str], lines: list[list[str]], markdown: bool) -> str:
    """A Markdown table, or aligned text: the three label columns left, the numbers right."""
    if markdown:
        rule = ["---"] * len(header)
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *lines])
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    render = lambda cells: "  ".join(f"{c:<{w}}" if i < 3 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([render(header), *map(render, lines)])


def plot(result: dict, path: str) -> None:
    """A bar chart of every entrant's speedup over NumPy per row (log scale), written to `path`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    rows = result["rows"]
    entrants = [n for n in dict.fromkeys(n for row in rows for n in row["seconds"]) if n != PLAIN_NUMPY]
    labels = [f"{row['op']} {'x'.join(map(str, row['shape']))} {row['dtype']}" for row in rows]
    height = 0.8 / max(len(entrants), 1)
    fig, ax = plt.subplots(figsize=(9, 0.25 * len(rows) + 1.5))
    for k, name in enumerate(entrants):
        speedups = [row["seconds"][PLAIN_NUMPY] / row["seconds"][name] if name in row["seconds"] else 0 for row in rows]
        ax.barh([i + k * height for i in range(len(rows))], speedups, height, label=name)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], labels, fontsize=7)
    ax.set_ylim(len(rows) - 0.1, -0.3)  # first row on top, no empty margins
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"speedup over {PLAIN_NUMPY} (log scale)")
    ax.set_title(f"gradkernels bench, {result['threads']} threads, fresh outputs")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# `bench --layers`: training steps (gradkernels._steps), with each backend at the default thread
# count and at one thread, against the same step by hand in NumPy and in PyTorch eager

# A sample is a run of consecutive steps, as in a training loop, after a pause in which the
# previous entrant's idle threads stop spinning: OpenBLAS's spin for 2^28 cycles (~0.1 s) after a
# GEMM, and would otherwise take cores from the next entrant (PyTorch's own pool, say).
STEP_MIN_SAMPLE_SECONDS = 20e-3
STEP_SETTLE_SECONDS = 0.12


def step_cells(activations=None, batches=None, widths=None) -> list[tuple[str, str, tuple[int, ...]]]:
    """(step, activation, shape) of every layer cell, then the MLP steps (relu and sigmoid), then the
    seed network's (relu) at its batches, less those `batches` leaves out."""
    activations = activations or _steps.ACTIVATIONS
    cells = [("layer", act, (batch, width)) for act in activations for batch in batches or _steps.BATCHES
             for width in widths or _steps.WIDTHS]
    cells += [("mlp", act, (_steps.MLP_BATCH, *_steps.MLP_WIDTHS)) for act in activations if act != "tanh"]
    return cells + [("mlp", "relu", (batch, *_steps.SEED_WIDTHS)) for batch in _steps.SEED_BATCHES
                    if "relu" in activations and (not batches or batch in batches)]


def step_entrants(step, activation, shape, dtype, backends, torch, rng) -> dict[str, Callable]:
    """name -> the call of a cell: "gemms" (layers only), "numpy" (by hand), "torch" (when given),
    and each backend as "<name>" and "<name> 1t" (its kernels on one thread)."""
    if step == "layer":
        inputs = _steps.layer_inputs(rng, dtype, *shape)
        ours = lambda b: _steps.layer_step(b, activation, *inputs)
        entrants = {"gemms": _steps.gemms(inputs[0], inputs[1], inputs[3]),
                    "numpy": _steps.numpy_layer_step(activation, *inputs)}
        peer = torch and (lambda: _steps.torch_layer_step(torch, activation, *inputs))
    else:
        inputs = _steps.mlp_inputs(rng, dtype, shape[0], shape[1:])
        ours = lambda b: _steps.mlp_step(b, activation, *inputs)
        entrants = {"numpy": _steps.numpy_mlp_step(activation, *inputs)}
        peer = torch and (lambda: _steps.torch_mlp_step(torch, activation, *inputs))
    if peer:
        entrants["torch"] = peer()
    for name in backends:
        call = ours(bind(name))
        entrants[name] = call
        entrants[f"{name} 1t"] = lambda call=call: _one_thread(call)
    return entrants


def _one_thread(call):
    with _threads.thread_limit(1):
        return call()


def run_steps(cells, dtype: str, backends, *, repeat: int, warmup: int, with_torch: bool, seed: int = 0) -> dict:
    """Every cell's entrants measured; the dict that --json writes."""
    torch = _torch() if with_torch else None
    rows = []
    for k, (step, activation, shape) in enumerate(cells):
        progress(k, len(cells), f"{step} {activation} {'x'.join(map(str, shape))}")
        entrants = step_entrants(step, activation, shape, np.dtype(dtype), backends, torch,
                                  np.random.default_rng(seed))
        medians = _round_robin(entrants, repeat, warmup, min_sample=STEP_MIN_SAMPLE_SECONDS,
                               settle=STEP_SETTLE_SECONDS)
        rows.append({"step": step, "activation": activation, "shape": list(shape), "dtype": dtype,
                     "seconds": medians})
    progress(len(cells), len(cells), "done")
    return {"threads": _threads.get_num_threads(), "repeat": repeat, "warmup": warmup, "backends": list(backends),
            "rows": rows}


def steps_table(result: dict, *, markdown: bool = False) -> str:
    """ms per entrant, then the fastest of our backends at the default thread count against
    hand-written NumPy and PyTorch, and the worst ratio of a backend's default to its one-thread
    time (above 1: the default is slower)."""
    backends = result["backends"]
    entrants = list(dict.fromkeys(name for row in result["rows"] for name in row["seconds"]))
    header = ["step", "activation", "shape", *(f"{name} ms" for name in entrants), "best", "x numpy", "x torch",
              "default/1t"]
    lines = []
    for row in result["rows"]:
        seconds = row["seconds"]
        best = min(backends, key=seconds.get)
        cells = [row["step"], row["activation"], "x".join(map(str, row["shape"]))]
        cells += [_milliseconds(seconds[name]) if name in seconds else "-" for name in entrants]
        cells.append(best)
        cells += [f"{seconds[peer] / seconds[best]:.2f}" if peer in seconds else "-" for peer in ("numpy", "torch")]
        cells.append(f"{max(seconds[name] / seconds[f'{name} 1t'] for name in backends):.2f}")
        lines.append(cells)
    return _render(header, lines, markdown)
