"""Many Python threads calling mixed ops on every backend at once: the results are bit-identical to
serial calls, nothing deadlocks, nothing aborts. Run in a subprocess, so that a deadlock is a
timeout and an abort a return code, not a hung or dead test run."""

import os
import subprocess
import sys

import gradkernels as gk

_MIXED_CALLS = r"""
import sys, threading
import numpy as np
import gradkernels as gk
import numba
from gradkernels.kernels._jit import PARALLEL_MIN_ELEMENTS

THREADS = int(sys.argv[1])
rng = np.random.default_rng(0)
big = rng.standard_normal(PARALLEL_MIN_ELEMENTS + 1234).astype(np.float32)  # above the parallel thresholds
small = rng.standard_normal((64, 33))                        # float64, serial
z = rng.standard_normal((512, 1000)).astype(np.float32)
labels = rng.integers(0, 1000, 512)
x, w, b = rng.standard_normal((256, 64)), rng.standard_normal((64, 40)), rng.standard_normal(40)
dy = rng.standard_normal((256, 40))
classes = rng.integers(0, 40, 256)

def calls(bk):
    a = bk.linear_relu(x, w, b)
    return [
        lambda: bk.relu(big), lambda: bk.relu_with_mask(big), lambda: bk.relu_backward(big, np.float32(0.5) - big),
        lambda: bk.leaky_relu(small, 0.1), lambda: bk.sigmoid(big), lambda: bk.tanh(small),
        lambda: bk.softmax(z), lambda: bk.log_softmax(small), lambda: bk.softmax_backward(small, bk.softmax(small)),
        lambda: bk.softmax_cross_entropy(z, labels, label_smoothing=0.1),
        lambda: bk.sigmoid_binary_cross_entropy(big, 0.5 + 0 * big), lambda: bk.mse(small, 0.5 * small),
        lambda: bk.linear(x, w, b), lambda: bk.linear_backward(dy, x, w), lambda: bk.linear_relu(x, w, b),
        lambda: bk.linear_relu_backward(dy, a, x, w),
        lambda: bk.linear_cross_entropy(x, w, b, classes, chunk_size=100),
    ]

def parts(result):
    return result if isinstance(result, tuple) else (result,)

def same(got, want):
    return all((g is None and v is None) or np.array_equal(g, v, equal_nan=True)
               for g, v in zip(parts(got), parts(want), strict=True))

names = [n for n, info in gk.backends().items() if info["available"]]
work = [(name, call) for name in names for call in calls(gk.backend(name))]
expected = [call() for _, call in work]
mismatches = []
failures = []

def worker(k):
    try:
        for round_ in range(4):
            for i in range(len(work)):
                j = (i + 7 * k + round_) % len(work)   # every thread in its own order: mixed at any moment
                if not same(work[j][1](), expected[j]):
                    mismatches.append((work[j][0], j))
    except BaseException as exc:
        failures.append(repr(exc))

threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
for t in threads: t.start()
for t in threads: t.join()
layer = numba.threading_layer() if "numba" in names else "none"
print(layer, len(work), len(mismatches), len(failures), failures[:1])
"""


def test_sixteen_threads_calling_mixed_ops_on_every_backend_get_the_serial_results():
    # A short libgomp spin leaves the parallel thresholds unscaled (gradkernels._threads), so the
    # arrays above reach the parallel paths.
    env = {**os.environ, "GOMP_SPINCOUNT": "0"}
    done = subprocess.run([sys.executable, "-c", _MIXED_CALLS, "16"], capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    layer, calls, mismatches, failures = done.stdout.split()[:4]
    available = [n for n, info in gk.backends().items() if info["available"]]
    assert int(calls) == 17 * len(available)
    assert (int(mismatches), int(failures)) == (0, 0), done.stdout
    if "numba" in available:
        # The thread-safe layers: workqueue would abort the process on concurrent launches.
        assert layer in ("omp", "tbb"), layer
