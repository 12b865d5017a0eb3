"""`python -m gradkernels bench --torch-ops`: gradkernels.torch against plain PyTorch on the same
tensors. Large cells time forward + backward (the loss's or activation's backward into its input,
a linear layer's into its input, weight and bias; the activations' and layers' from a dense
upstream gradient, as the next layer sends it), and the losses' forward under torch.no_grad()
(evaluation, where ours computes the loss alone); the fused linear + cross-entropy also reports
its peak extra memory; tiny cells time one forward call, to show what the PyTorch layer costs over
our NumPy API: with no input requiring a gradient, and with one (recorded for autograd). Timing as
in `bench` (round-robin medians, `_bench._round_robin`)."""

import numpy as np

from . import _bench, _threads

# (function, shape): logits or activations (rows, classes) / (rows, columns); a linear layer's
# (rows, in_features, out_features), the fused loss's (rows, features, classes)
LARGE = (("cross_entropy", (2048, 32000)), ("cross_entropy", (4096, 1000)),
         ("binary_cross_entropy_with_logits", (4096, 4096)), ("mse_loss", (4096, 4096)),
         ("relu", (4096, 4096)), ("sigmoid", (4096, 4096)), ("tanh", (4096, 4096)),
         ("linear", (4096, 1024, 1024)), ("linear", (16384, 128, 128)), ("linear_relu", (4096, 1024, 1024)))
LAYERS = ("linear", "linear_relu")
FUSED = ("linear_cross_entropy", (8192, 1024, 32000))
LOSSES = ("cross_entropy", "binary_cross_entropy_with_logits", "mse_loss", "linear_cross_entropy")
TINY = (("cross_entropy", (32, 10)), ("sigmoid", (32, 10)), ("relu", (32, 10)), ("mse_loss", (32, 10)))


def _inputs(torch, name, shape, generator):
    """The tensors of `name`'s call at `shape` and PyTorch's own function for it."""
    F = torch.nn.functional
    if name in LAYERS:
        rows, features, outputs = shape
        x = torch.randn(rows, features, generator=generator)
        w = torch.randn(outputs, features, generator=generator) * features ** -0.5
        theirs = F.linear if name == "linear" else lambda x, w, b: F.relu(F.linear(x, w, b))
        return (x, w, torch.zeros(outputs)), theirs
    z = 3 * torch.randn(*shape[:2], generator=generator)
    if name == "cross_entropy":
        return (z, torch.randint(0, shape[1], shape[:1], generator=generator)), F.cross_entropy
    if name == "binary_cross_entropy_with_logits":
        return (z, torch.rand(*shape, generator=generator)), F.binary_cross_entropy_with_logits
    if name == "mse_loss":
        return (z, torch.randn(*shape, generator=generator)), F.mse_loss
    if name == "linear_cross_entropy":
        rows, features, classes = shape
        x = torch.randn(rows, features, generator=generator)
        w = torch.randn(classes, features, generator=generator) * features ** -0.5
        labels = torch.randint(0, classes, (rows,), generator=generator)
        return (x, w, torch.zeros(classes), labels), lambda x, w, b, t: F.cross_entropy(F.linear(x, w, b), t)
    return (z,), getattr(torch, name)


def _forward_backward(fn, inputs):
    """fn(*inputs) and its backward into the float inputs of its first arguments (all but targets).
    An activation's or layer's upstream gradient is a dense tensor made once, as a following
    layer's backward sends it (not the stride-0 expansion of a .sum()'s, which our NumPy API would
    copy first)."""
    differentiable = inputs[:3] if len(inputs) >= 3 else inputs[:1]  # a layer's or the fused loss's three
    leaves = [t.clone().requires_grad_() for t in differentiable]
    rest = inputs[len(leaves):]
    if len(inputs) == 1:
        upstream = inputs[0].new_ones(inputs[0].shape)
    elif len(inputs) == 3:
        upstream = inputs[0].new_ones((inputs[0].shape[0], inputs[1].shape[0]))
    else:
        upstream = None  # a loss

    def call():
        for leaf in leaves:
            leaf.grad = None
        fn(*leaves, *rest).backward(upstream)

    return call


def _evaluated(torch, fn, inputs):
    """fn(*inputs) under torch.no_grad(), as an evaluation loop calls a loss."""
    def call():
        with torch.no_grad():
            fn(*inputs)

    return call


def _peak_extra_bytes(call) -> int | None:
    """Resident memory at the call's peak over before it (Linux: the peak is reset through
    /proc/self/clear_refs), or None where that cannot be read."""
    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS:")
    except OSError:
        return None
    call()
    return status("VmHWM:") - before


def forward_backward_entrants(torch, name, shape, generator, *, evaluation=False) -> dict:
    """A large cell's calls: forward + backward (with `evaluation`, a loss's forward under no_grad)
    through gradkernels.torch and in plain PyTorch."""
    import gradkernels.torch as gkt

    inputs, theirs = _inputs(torch, name, shape, generator)
    if evaluation:
        return {"gradkernels.torch": _evaluated(torch, getattr(gkt, name), inputs),
                "torch": _evaluated(torch, theirs, inputs)}
    return {"gradkernels.torch": _forward_backward(getattr(gkt, name), inputs),
            "torch": _forward_backward(theirs, inputs)}


def call_entrants(torch, name, shape, generator) -> dict:
    """A tiny cell's calls: one forward through our NumPy API, through gradkernels.torch without
    and with an input requiring a gradient, and in PyTorch both ways."""
    import gradkernels as gk
    import gradkernels.torch as gkt

    inputs, theirs = _inputs(torch, name, shape, generator)
    arrays = [t.numpy() for t in inputs]
    ours = getattr(gkt, name)
    recorded = (inputs[0].clone().requires_grad_(), *inputs[1:])
    api = {"cross_entropy": gk.softmax_cross_entropy, "mse_loss": gk.mse}.get(name) or getattr(gk, name)
    return {"numpy API": lambda: api(*arrays), "gradkernels.torch": lambda: ours(*inputs),
            "gradkernels.torch, recording": lambda: ours(*recorded), "torch": lambda: theirs(*inputs),
            "torch, recording": lambda: theirs(*recorded)}


def run(*, repeat: int, warmup: int, fused: bool = True, seed: int = 0) -> dict:
    torch = _bench._torch()
    if torch is None:
        raise RuntimeError('--torch-ops needs PyTorch: pip install "gradkernels[torch]"')
    generator = torch.Generator().manual_seed(seed)
    rows = []
    cells = [*LARGE, *([FUSED] if fused else [])]
    cells = [(kind, name, shape) for kind in ("forward + backward", "forward, no grad") for name, shape in cells
             if kind == "forward + backward" or name in LOSSES]
    total = len(cells) + len(TINY)
    for k, (kind, name, shape) in enumerate(cells):
        _bench.progress(k, total, f"{name} {'x'.join(map(str, shape))}, {kind}")
        entrants = forward_backward_entrants(torch, name, shape, generator, evaluation=kind != "forward + backward")
        # GEMMs are OpenBLAS's in ours, MKL's on PyTorch's pool in theirs: each sample of a cell
        # with GEMMs waits for the other pool's threads to stop spinning, as a step's does (_bench)
        settle = _bench.STEP_SETTLE_SECONDS if name in (*LAYERS, FUSED[0]) else 0.0
        row = {"kind": kind, "function": name, "shape": list(shape),
               "seconds": _bench._round_robin(entrants, repeat, warmup, settle=settle)}
        if name == FUSED[0]:
            row["peak_extra_bytes"] = {entrant: _peak_extra_bytes(call) for entrant, call in entrants.items()}
        rows.append(row)
    for k, (name, shape) in enumerate(TINY):
        _bench.progress(len(cells) + k, total, f"{name} {'x'.join(map(str, shape))}")
        rows.append({"kind": "forward", "function": name, "shape": list(shape),
                     "seconds": _bench._round_robin(call_entrants(torch, name, shape, generator), repeat, warmup)})
    _bench.progress(total, total, "done")
    # which of PyTorch's kernel builds ran (ATEN_CPU_CAPABILITY can cap it, as GRADKERNELS_MAX_ISA
    # caps ours): a ratio means something only beside both
    return {"threads": _threads.get_num_threads(), "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "repeat": repeat, "rows": rows}


def table(result: dict, *, markdown: bool = False) -> str:
    """Large cells: ms of ours and PyTorch's, PyTorch's time over ours, and for the fused loss the
    peak extra memory; tiny cells: us per forward call, and ours less our NumPy API's."""
    large = [row for row in result["rows"] if row["kind"] != "forward"]
    lines = []
    for row in large:
        s, memory = row["seconds"], row.get("peak_extra_bytes", {})
        cells = [row["function"], row["kind"], "x".join(map(str, row["shape"])),
                 _bench._milliseconds(s["gradkernels.torch"]), _bench._milliseconds(s["torch"]),
                 f"{s['torch'] / s['gradkernels.torch']:.2f}"]
        cells += [f"{memory[e] / 2**20:.0f}" if memory.get(e) is not None else "-"
                  for e in ("gradkernels.torch", "torch")]
        lines.append(cells)
    text = _bench._render(["function", "pass", "shape", "gradkernels.torch ms", "torch ms",
                           "x torch", "ours peak extra MiB", "torch peak extra MiB"], lines, markdown)
    tiny = [row for row in result["rows"] if row["kind"] == "forward"]
    names = ("numpy API", "gradkernels.torch", "gradkernels.torch, recording", "torch", "torch, recording")
    lines = []
    for row in tiny:
        s = row["seconds"]
        lines.append([row["function"], "x".join(map(str, row["shape"])), *(f"{s[n] * 1e6:.1f}" for n in names),
                      f"{(s['gradkernels.torch'] - s['numpy API']) * 1e6:.1f}",
                      f"{(s['gradkernels.torch, recording'] - s['numpy API']) * 1e6:.1f}"])
    return text + "\n\n" + _bench._render(
        ["function (one forward call)", "shape", *(f"{n} us" for n in names), "over the API us",
         "over the API, recording us"], lines, markdown)
