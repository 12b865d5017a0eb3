"""Ctrl-C during long calls: control comes back as KeyboardInterrupt once the running kernel ends,
the process neither hangs nor crashes. The kernels release the GIL and are not interruptible
themselves, so Python raises the interrupt at the next bytecode after the call."""

import signal
import subprocess
import sys
import time

import pytest

import gradkernels as gk

_LONG_CALLS = r"""
import signal, sys, time
import numpy as np
import gradkernels as gk
# Python's own Ctrl-C handling, as in a terminal: a background job of a non-interactive shell (a
# CI script's `cmd &`) starts with SIGINT ignored, and Python then leaves it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
bk = gk.backend(sys.argv[1])
x = np.linspace(-5, 5, 1 << 24, dtype=np.float32)
z = x.reshape(4096, 4096)
labels = np.arange(4096) % 4096
bk.sigmoid(x[:10]); bk.softmax_cross_entropy(z[:2], labels[:2])  # compile first (Numba)
print("started", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    bk.sigmoid(x)
    bk.softmax_cross_entropy(z, labels)
print("not interrupted", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.parametrize("backend", [n for n, info in gk.backends().items() if info["available"]])
def test_ctrl_c_during_long_calls_raises_keyboard_interrupt(backend):
    child = subprocess.Popen([sys.executable, "-c", _LONG_CALLS, backend], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        time.sleep(0.5)  # inside the loop of long calls
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        child.kill()
    assert "not interrupted" not in out
    # An uncaught KeyboardInterrupt ends Python by SIGINT itself, as a shell expects of Ctrl-C.
    assert child.returncode == -signal.SIGINT and err.rstrip().endswith("KeyboardInterrupt"), err[-2000:]
    assert waited < 10  # the call in progress finishes, no more
