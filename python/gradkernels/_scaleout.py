"""`python -m gradkernels scale-demo`: full-batch gradient descent with gradkernels.dask on a
LocalCluster of worker processes, on a synthetic dataset larger than one worker's memory limit,
next to the same descent in this process; exits 1 unless both reach the same parameters.

Logistic regression: θ ← θ − (η/N) Σ_i (σ(θᵀx_i) − y_i) x_i, the gradient as the sum-reduced
sigmoid + BCE gradient through linear_backward. Softmax regression: (W, b) ← (W, b) − η ∇ of the
mean cross-entropy, from linear_cross_entropy. Float64 throughout, so "the same" means within a
relative 1e-9.
"""

import time

import numpy as np

from ._dispatch import backend as _backend

AGREEMENT = 1e-9
# A worker process's own memory (Python, NumPy, Numba, Dask: about 200 MiB) and its chunks'
# results in flight; with X in 16 chunks per worker a step peaked at 860 MiB of a 1147 MiB limit.
WORKER_BASELINE = 384 << 20
CHUNKS_PER_WORKER = 16


def _data(dask_array, rows, features, classes, chunk_rows, seed):
    """X (rows, features) generated on the workers, logistic targets y in {0, 1} and class labels,
    from planted parameters plus noise."""
    rng = dask_array.random.default_rng(seed)
    x = rng.standard_normal((rows, features), chunks=(chunk_rows, -1))
    planted = np.random.default_rng(seed + 1).standard_normal((features, classes))
    scores = x @ planted + rng.gumbel(size=(rows, classes), chunks=(chunk_rows, -1))
    return x, (scores[:, :1] > scores[:, 1:2]).astype(np.float64), scores.argmax(axis=1)


def _logistic_step(ops, x, y, theta):
    z = x @ theta
    loss, dz = ops.sigmoid_binary_cross_entropy(z, y, reduction="sum")
    grad = ops.linear_backward(dz, x, theta, with_bias=False)[1]
    return loss, grad


def _softmax_step(ops, x, labels, w, b):
    loss, _, dw, db = ops.linear_cross_entropy(x, w, b, labels)
    return loss, dw, db


def run(rows, features, classes, workers, iterations, rate, seed, backend) -> int:
    import dask
    import dask.array as da
    import distributed

    from . import dask as gd

    chunk_rows = max(1, rows // (CHUNKS_PER_WORKER * workers))
    dataset_bytes = rows * features * 8
    # Each worker's share of X and a quarter more, plus what a worker process needs of its own.
    memory_limit = int(dataset_bytes / workers * 1.25) + WORKER_BASELINE
    print(f"X: {rows} x {features} float64 = {dataset_bytes / 2**20:.0f} MiB "
          f"({dataset_bytes / memory_limit:.2f} x one worker's memory limit) in chunks of {chunk_rows} rows; "
          f"{workers} worker processes of 1 thread and {memory_limit / 2**20:.0f} MiB; backend {backend}")
    in_memory = _backend(backend)
    distributed_ops = _DaskOps(gd, backend)
    # X's chunks stay in the workers' memory: no spilling to disk (Dask's default starts at 60% of the
    # limit). With spilling from 90%, a worker reached 2.5 GiB in the first step and was restarted.
    config = {"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
              "distributed.worker.memory.pause": False}
    with dask.config.set(config), distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
        dashboard_address=None, env={"OPENBLAS_NUM_THREADS": "1"},
    ) as cluster, distributed.Client(cluster):
        x, y, labels = dask.persist(*_data(da, rows, features, classes, chunk_rows, seed))
        # block by block, so that no worker assembles the whole of X
        local = [np.concatenate(dask.compute(*a.to_delayed().ravel())) for a in (x, y, labels)]
        failures = 0
        for name, descend in (("logistic regression", _descend_logistic), ("softmax regression", _descend_softmax)):
            results = {}
            for where, ops, data in (("cluster", distributed_ops, (x, y, labels)), ("in memory", in_memory, local)):
                start = time.perf_counter()
                results[where] = descend(ops, *data, classes, iterations, rate, rows)
                elapsed = time.perf_counter() - start
                print(f"{name}, {where}: final loss {results[where][0]:.9f}, "
                      f"{elapsed / iterations * 1e3:.0f} ms per iteration")
            params = [np.concatenate([np.ravel(p) for p in results[w][1]]) for w in ("cluster", "in memory")]
            difference = np.max(np.abs(params[0] - params[1])) / np.max(np.abs(params[1]))
            agree = difference <= AGREEMENT
            failures += not agree
            print(f"{name}: parameters differ by {difference:.1e} of their largest "
                  f"({'agree' if agree else 'DISAGREE'}, limit {AGREEMENT:g})")
    return 1 if failures else 0


class _DaskOps:
    """The ops the descents call, from gradkernels.dask, computed each step (the parameters are
    small NumPy arrays; X stays on the workers)."""

    def __init__(self, gd, backend):
        self._gd, self._backend = gd, backend

    def sigmoid_binary_cross_entropy(self, z, y, reduction):
        return self._gd.sigmoid_binary_cross_entropy(z, y, reduction=reduction, backend=self._backend)

    def linear_backward(self, dy, x, w, with_bias):
        return self._gd.linear_backward(dy, x, w, with_bias=with_bias, backend=self._backend)

    def linear_cross_entropy(self, x, w, b, labels):
        return self._gd.linear_cross_entropy(x, w, b, labels, backend=self._backend)


def _computed(*values):
    import dask

    return dask.compute(*values)


def _descend_logistic(ops, x, y, labels, classes, iterations, rate, rows):
    theta = np.zeros((x.shape[1], 1))
    for _ in range(iterations):
        loss, grad = _computed(*_logistic_step(ops, x, y, theta))
        theta -= rate / rows * grad
    return float(loss) / rows, (theta,)


def _descend_softmax(ops, x, y, labels, classes, iterations, rate, rows):
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    for _ in range(iterations):
        loss, dw, db = _computed(*_softmax_step(ops, x, labels, w, b))
        w -= rate * dw
        b -= rate * db
    return float(loss), (w, b)
