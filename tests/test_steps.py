"""The training steps that `bench --layers`, the asv suite and the demo time: written with our ops
on every backend, by hand in NumPy and in PyTorch, they compute the same gradients — otherwise
their times would compare different work. And the thread policy they are timed under: the
parallel thresholds follow how libgomp's idle threads wait, which gradkernels leaves alone."""

import os
import subprocess
import sys

import numpy as np
import pytest

import gradkernels as gk
from gradkernels import _steps, _threads

BACKENDS = [name for name, info in gk.backends().items() if info["available"]]


def _close(got, want):
    got, want = np.asarray(got, float), np.asarray(want, float)
    # float64 sums of a few hundred terms in another order: a few ulps of the terms' sizes
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(want).max())))


try:
    import torch
except ImportError:  # the PyTorch column is then left out
    torch = None


@pytest.mark.parametrize("activation", _steps.ACTIVATIONS)
def test_a_layer_step_gives_the_same_gradients_every_way_it_is_written(rng, activation):
    inputs = _steps.layer_inputs(rng, np.float64, 33, 20)
    want = _steps.numpy_layer_step(activation, *inputs)()
    ways = {name: _steps.layer_step(gk.backend(name), activation, *inputs) for name in BACKENDS}
    if torch is not None:
        ways["torch"] = _steps.torch_layer_step(torch, activation, *inputs)
    for name, step in ways.items():
        for got, expected in zip(step(), want, strict=True):
            _close(got, expected)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_an_mlp_step_gives_the_same_loss_and_gradients_every_way_it_is_written(rng, activation):
    inputs = _steps.mlp_inputs(rng, np.float64, 40, (7, 12, 9, 5))
    want_loss, want_grads = _steps.numpy_mlp_step(activation, *inputs)()
    ways = {name: _steps.mlp_step(gk.backend(name), activation, *inputs) for name in BACKENDS}
    if torch is not None:
        ways["torch"] = _steps.torch_mlp_step(torch, activation, *inputs)
    for name, step in ways.items():
        loss, grads = step()
        _close(float(loss), want_loss)
        assert len(grads) == len(want_grads) == 6
        for got, expected in zip(grads, want_grads):
            _close(got, expected)


def test_a_step_leaves_its_inputs_alone(rng):
    x, labels, params = _steps.mlp_inputs(rng, np.float32, 16, (5, 8, 3))
    copies = [a.copy() for a in (x, labels, *params)]
    for name in BACKENDS:
        _steps.mlp_step(gk.backend(name), "sigmoid", x, labels, params)()
    _steps.numpy_mlp_step("sigmoid", x, labels, params)()
    for before, after in zip(copies, (x, labels, *params)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("env, scale", [
    ({}, _threads.DEFAULT_SPIN_SCALE),
    ({"OMP_WAIT_POLICY": "passive"}, 1),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, _threads.DEFAULT_SPIN_SCALE),
    ({"GOMP_SPINCOUNT": "1000"}, 1),
    ({"GOMP_SPINCOUNT": "1k"}, 1),
    ({"GOMP_SPINCOUNT": "2k"}, _threads.DEFAULT_SPIN_SCALE),
    ({"GOMP_SPINCOUNT": "infinite"}, _threads.DEFAULT_SPIN_SCALE),
    ({"GOMP_SPINCOUNT": "300000", "OMP_WAIT_POLICY": "passive"}, _threads.DEFAULT_SPIN_SCALE),  # libgomp's order
    ({"GOMP_SPINCOUNT": "0", "OMP_WAIT_POLICY": "active"}, 1),
])
def test_the_parallel_thresholds_follow_how_libgomp_will_wait(env, scale):
    assert _threads.parallel_scale_for(env) == scale


def test_info_says_how_libgomp_waits_and_what_that_makes_of_the_thresholds():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    default = subprocess.run([sys.executable, "-m", "gradkernels", "info"], capture_output=True, text=True,
                             env=env, check=True).stdout
    short = subprocess.run([sys.executable, "-m", "gradkernels", "info"], capture_output=True, text=True,
                           env={**env, "GOMP_SPINCOUNT": "0"}, check=True).stdout
    assert (f"libgomp's default spin: parallel thresholds x{_threads.DEFAULT_SPIN_SCALE}, "
            f"x{_threads.BESIDE_PYTORCH_SCALE} in gradkernels.torch's activations and losses") in default
    assert "GOMP_SPINCOUNT=0: parallel thresholds x1\n" in short


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts the process's threads in /proc (Linux)")
@pytest.mark.skipif(_threads.MAX_THREADS < 2, reason="needs two cores for a parallel kernel")
@pytest.mark.parametrize("backend", [name for name in ("c", "numba") if name in BACKENDS])
def test_a_kernel_runs_in_parallel_only_from_its_threshold_times_the_scale_of_its_call(backend):
    """The scale reaches the kernel with each call: 2^21 sigmoids (threshold 2^18) stay on the
    calling thread at 64 and start the OpenMP or Numba pool at 1. In a fresh process, whose pool
    has not started yet."""
    code = f"""
import os
import numpy as np
import gradkernels as gk
from gradkernels import _threads

ops = gk.backend({backend!r})
x = np.linspace(-4.0, 4.0, 1 << 21)
threads = lambda: len(os.listdir("/proc/self/task"))
ops.sigmoid(x[:8])  # loads the backend and compiles
before = threads()
_threads.at_parallel_scale(64, ops.sigmoid)(x)
serial = threads()
_threads.at_parallel_scale(1, ops.sigmoid)(x)
print(before, serial, threads())
"""
    before, serial, parallel = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                        check=True).stdout.split())
    assert serial == before < parallel


def test_importing_gradkernels_leaves_libgomp_s_settings_alone():
    """Nothing in the environment changes, so PyTorch's pool, or any libgomp user's, waits as it would."""
    code = ("import os, gradkernels as gk\nbefore = dict(os.environ)\ngk.backends()\n"
            "assert dict(os.environ) == before")
    subprocess.run([sys.executable, "-c", code], check=True)
