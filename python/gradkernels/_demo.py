"""`python -m gradkernels demo`: small networks trained with mini-batch SGD, written with the ops,
run on every available backend from the same seed.

1. A 3-class spiral: X (n, 3) -> 10 -> ReLU -> 6 -> ReLU -> 3 -> softmax-CE, with the fused
   linear_relu, linear_relu_backward and linear_cross_entropy.
2. Two classes, inside or outside a circle: X (n, 2) -> 16 -> sigmoid -> 1 -> sigmoid + BCE, with
   linear, sigmoid and their backwards.
3. The regression net of the README's The math §6: its loss and gradients against the worked values.

Each network is also trained by a step written by hand in plain NumPy, the code a user would
have without gradkernels: the time per epoch of every backend is given against it. In float64
every run must end at the same loss as the NumPy backend's to a relative 1e-9 (and the backends
match the worked values); the command exits with 1 if one does not.
"""

import dataclasses
import time

import numpy as np

from . import _selftest, _steps
from ._bench import progress
from ._dispatch import backend as bind

SAME_LOSS_RTOL = 1e-9
BY_HAND = "by hand"  # the run whose steps are plain NumPy


def spiral(rng, points_per_class: int, classes: int = 3):
    """Interleaved spiral arms in the plane, one per class; features: the two coordinates and the
    distance from the centre."""
    labels = np.repeat(np.arange(classes), points_per_class)
    radius = np.tile(np.linspace(0.05, 1.0, points_per_class), classes)
    angle = labels * (2 * np.pi / classes) + 4 * radius + rng.normal(0, 0.2, labels.size)
    return np.column_stack([radius * np.sin(angle), radius * np.cos(angle), radius]), labels


def circle(rng, points: int):
    """Points of the square [-1, 1]^2, labelled 1 inside the circle of radius 0.7."""
    x = rng.uniform(-1, 1, (points, 2))
    return x, (np.hypot(x[:, 0], x[:, 1]) < 0.7).astype(float)[:, None]


def _init(rng, fan_in: int, fan_out: int, gain: float):
    return rng.normal(0, gain / np.sqrt(fan_in), (fan_in, fan_out)), np.zeros(fan_out)


class SpiralNet:
    """X (n, 3) -> 10 -> ReLU -> 6 -> ReLU -> 3 -> softmax-CE."""

    def __init__(self, rng):
        self.params = [p for fan_in, fan_out, gain in ((3, 10, 2.0), (10, 6, 2.0), (6, 3, 1.0))
                       for p in _init(rng, fan_in, fan_out, gain)]

    def step(self, ops, x, labels, lr: float) -> float:
        """linear_relu twice, linear_cross_entropy, linear_relu_backward twice (gradkernels._steps)."""
        return self._descend(_steps.mlp_step(ops, "relu", x, labels, self.params), lr)

    def by_hand(self, x, labels, lr: float) -> float:
        return self._descend(_steps.numpy_mlp_step("relu", x, labels, self.params), lr)

    def _descend(self, step, lr: float) -> float:
        loss, grads = step()
        for param, grad in zip(self.params, grads):
            param -= lr * grad
        return float(loss)


class CircleNet:
    """X (n, 2) -> 16 -> sigmoid -> 1 -> sigmoid + binary cross-entropy."""

    def __init__(self, rng):
        self.params = [*_init(rng, 2, 16, 4.0), *_init(rng, 16, 1, 1.0)]

    def step(self, ops, x, y, lr: float) -> float:
        w1, b1, w2, b2 = self.params
        h = ops.sigmoid(ops.linear(x, w1, b1))
        loss, dz2 = ops.sigmoid_binary_cross_entropy(ops.linear(h, w2, b2), y)
        dh, dw2, db2 = ops.linear_backward(dz2, h, w2)
        _, dw1, db1 = ops.linear_backward(ops.sigmoid_backward(dh, h), x, w1, with_dx=False)
        for param, grad in zip(self.params, (dw1, db1, dw2, db2)):
            param -= lr * grad
        return float(loss)

    def by_hand(self, x, y, lr: float) -> float:
        w1, b1, w2, b2 = self.params
        h = 1 / (1 + np.exp(-(x @ w1 + b1)))
        z = h @ w2 + b2
        loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
        dz2 = (1 / (1 + np.exp(-z)) - y) / z.size
        dz1 = (dz2 @ w2.T) * h * (1 - h)
        for param, grad in zip(self.params, (x.T @ dz1, dz1.sum(axis=0), h.T @ dz2, dz2.sum(axis=0))):
            param -= lr * grad
        return float(loss)


@dataclasses.dataclass
class Task:
    title: str
    network: type
    data: tuple  # (inputs, targets)
    epochs: int
    batch: int
    lr: float


@dataclasses.dataclass
class Run:
    backend: str
    losses: list[float]  # the mean loss of each epoch's batches
    epoch_seconds: list[float]


def train(task: Task, backend_name: str, seed: int) -> Run:
    """Mini-batch SGD on `task` with the ops of one backend (or BY_HAND: the network's plain NumPy
    step); the seed fixes the initial weights and every epoch's shuffle, so every run does the
    same arithmetic."""
    rng = np.random.default_rng(seed)
    net = task.network(rng)
    if backend_name == BY_HAND:
        step = net.by_hand
    else:
        ops = bind(backend_name)
        step = lambda x, y, lr: net.step(ops, x, y, lr)
    x, y = task.data
    run = Run(backend_name, [], [])
    for epoch in range(task.epochs):
        progress(epoch, task.epochs, f"{task.title.split(':')[0]} on {backend_name}")
        order = rng.permutation(len(x))
        start = time.perf_counter()
        total = 0.0
        for first in range(0, len(x), task.batch):
            batch = order[first : first + task.batch]
            total += step(x[batch], y[batch], task.lr) * len(batch)
        run.epoch_seconds.append(time.perf_counter() - start)
        run.losses.append(total / len(x))
    progress(task.epochs, task.epochs, "done")
    return run


def tasks(quick: bool, seed: int) -> list[Task]:
    rng = np.random.default_rng(seed)
    points, epochs = (100, 60) if quick else (300, 300)
    return [
        Task("spiral: 3 classes, X (n, 3) -> 10 -> ReLU -> 6 -> ReLU -> 3 -> softmax-CE",
             SpiralNet, spiral(rng, points), epochs, 32, 0.2),
        Task("circle: 2 classes, X (n, 2) -> 16 -> sigmoid -> 1 -> sigmoid + BCE",
             CircleNet, circle(rng, 3 * points), epochs, 32, 1.0),
    ]


def report(task: Task, runs: list[Run]) -> bool:
    """Prints the loss curve and the time per epoch of each run, and that time against the run by
    hand; whether every run ended at the NumPy backend's loss."""
    x, _ = task.data
    print(f"{task.title}")
    print(f"  {len(x)} points, batches of {task.batch}, learning rate {task.lr}, {task.epochs} epochs, float64")
    names = [run.backend for run in runs]
    print("  epoch " + "".join(f"{name:>14}" for name in names))
    shown = sorted({0, *range(task.epochs // 10 - 1, task.epochs, max(1, task.epochs // 10))})
    for epoch in shown:
        print(f"  {epoch + 1:5d} " + "".join(f"{run.losses[epoch]:14.8f}" for run in runs))
    reference = runs[0]
    # Median over epochs: the first epoch of a backend also compiles its kernels (Numba).
    per_epoch = {run.backend: float(np.median(run.epoch_seconds)) for run in runs}
    print("  ms/epoch" + "".join(f"{per_epoch[name] * 1e3:12.2f}  " for name in names))
    print("  x hand  " + "".join(f"{per_epoch[BY_HAND] / per_epoch[name]:12.2f}x " for name in names))
    same = True
    for run in runs[1:]:
        difference = abs(run.losses[-1] - reference.losses[-1]) / abs(reference.losses[-1])
        ok = difference <= SAME_LOSS_RTOL
        same &= ok
        print(f"  final loss on {run.backend}: relative difference from {reference.backend} {difference:.1e} "
              f"({'ok' if ok else f'FAIL: more than {SAME_LOSS_RTOL:g}'})")
    print()
    return same


def worked_example(names: list[str]) -> bool:
    """The math §6 (README) on every backend against the published values."""
    print("regression net of The math §6 (README): loss and gradients against the worked values")
    results = {name: _selftest.worked_example(bind(name)) for name in names}
    errors = {name: _selftest.worked_example_errors(got) for name, got in results.items()}
    ok = True
    for key, expected in _selftest.WORKED_EXAMPLE_EXPECTED.items():
        expected = np.asarray(expected, float)
        print(f"  {key:6} expected {np.array2string(expected.ravel()[:4], precision=8)}")
        for name, got in results.items():
            error = errors[name][key]
            ok &= error <= _selftest.WORKED_EXAMPLE_TOLERANCE
            print(f"  {'':6} {name:8} {np.array2string(np.ravel(got[key])[:4], precision=8)}  max error {error:.1e}")
    print()
    return ok


def plot(runs_by_task: list[tuple[Task, list[Run]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs_by_task) + 1, figsize=(5 * (len(runs_by_task) + 1), 4))
    for ax, (task, runs) in zip(axes, runs_by_task):
        for run in runs:
            ax.plot(range(1, task.epochs + 1), run.losses, label=run.backend)
        ax.set_title(task.title.split(":")[0] + " (training loss)")
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend()
    ax = axes[-1]
    names = [run.backend for run in runs_by_task[0][1]]
    width = 0.8 / len(runs_by_task)
    for k, (task, runs) in enumerate(runs_by_task):
        ax.bar([i + k * width for i in range(len(names))], [np.median(r.epoch_seconds) * 1e3 for r in runs], width,
               label=task.title.split(":")[0])
    ax.set_xticks([i + width * (len(runs_by_task) - 1) / 2 for i in range(len(names))], names)
    ax.set_ylabel("ms per epoch (median)")
    ax.set_title("time per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(names: list[str], *, quick: bool, seed: int, plot_path: str | None) -> int:
    names = ["numpy", *(name for name in names if name != "numpy")]  # the reference first
    runs_by_task = [(task, [train(task, name, seed) for name in [*names, BY_HAND]]) for task in tasks(quick, seed)]
    ok = all([report(task, runs) for task, runs in runs_by_task])
    ok &= worked_example(names)
    if plot_path:
        plot(runs_by_task, plot_path)
    print("every run reached the same losses" if ok else "FAILED: a run's results differ")
    return 0 if ok else 1
