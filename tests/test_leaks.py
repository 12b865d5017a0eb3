"""100,000 calls of each op, on every backend, leave the process's resident memory where it was:
results, scratch buffers, cffi pointers and exceptions are all released. Run in a subprocess, so
that nothing the test runner holds counts."""

import subprocess
import sys

import pytest

import gradkernels as gk
from gradkernels._ops import OPS

_CALLS = r"""
import sys
import numpy as np
import gradkernels as gk
from gradkernels import _catalog, _samples

CALLS = int(sys.argv[1])
backend = sys.argv[2]
bk = gk.backend(backend)

rng = np.random.default_rng(0)
ops = {}
for op in _catalog.OPS:  # every op on small arrays made from its declaration
    args = _samples.arguments(op, _samples.small(op), np.float64, rng)
    ops[op.name] = lambda name=op.name, args=args: getattr(bk, name)(*args)
m = rng.standard_normal((4, 5))
labels = np.array([0, 4, -100, 2])
ops["softmax_cross_entropy ignored, smoothed"] = lambda: bk.softmax_cross_entropy(m, labels, label_smoothing=0.1)
ops["softmax_cross_entropy soft"] = lambda: bk.softmax_cross_entropy(m, np.abs(m))
ops["mse none"] = lambda: bk.mse(m, m / 2, reduction="none")
x = rng.standard_normal((4, 3))

def raises(call, error):
    def run():
        try:
            call()
        except error:
            return
        raise AssertionError("no error")
    return run

ops["raising: bad dtype"] = raises(lambda: bk.relu(np.arange(4)), TypeError)
ops["raising: bad label"] = raises(lambda: bk.softmax_cross_entropy(m, np.array([0, 9, 1, 2])), ValueError)
ops["raising: bad shape"] = raises(lambda: bk.linear(x, m), ValueError)

def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

for name, call in ops.items():
    for _ in range(2000):  # compiles, fills the allocator's pools and NumPy's caches
        call()
    before = resident_bytes()
    for _ in range(CALLS):
        call()
    print(name, resident_bytes() - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("backend", [n for n, info in gk.backends().items() if info["available"]])
def test_a_hundred_thousand_calls_of_each_op_leave_resident_memory_flat(backend):
    done = subprocess.run([sys.executable, "-c", _CALLS, "100000", backend], capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    growth = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines()}
    # every public op, so that a new one cannot go unchecked, and the error paths
    assert {name.split()[0] for name in growth if not name.startswith("raising:")} == set(OPS)
    assert sum(name.startswith("raising:") for name in growth) == 3
    grew = {name: bytes_ for name, bytes_ in growth.items() if bytes_ >= 1 << 20}
    assert not grew, f"resident memory grew by 1 MiB or more over 100,000 calls: {grew}"
