"""The training steps that `bench --layers`, the asv suite and the demo time: written with our ops
on every backend, by hand in NumPy and in PyTorch, they compute the same gradients — otherwise
their times would compare different work. And the thread policy they are timed under: libgomp
loads with a short spin unless the user chose its wait policy."""

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


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("activation", _steps.ACTIVATIONS)
def test_a_layer_step_gives_the_same_gradients_every_way_it_is_written(rng, activation):
    inputs = _steps.layer_inputs(rng, np.float64, 33, 20)
    want = _steps.numpy_layer_step(activation, *inputs)()
    ways = {name: _steps.layer_step(gk.backend(name), activation, *inputs) for name in BACKENDS}
    try:
        ways["torch"] = _steps.torch_layer_step(_torch(), activation, *inputs)
    except pytest.skip.Exception:
        pass
    for name, step in ways.items():
        for got, expected in zip(step(), want, strict=True):
            _close(got, expected)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_an_mlp_step_gives_the_same_loss_and_gradients_every_way_it_is_written(rng, activation):
    inputs = _steps.mlp_inputs(rng, np.float64, 40, (7, 12, 9, 5))
    want_loss, want_grads = _steps.numpy_mlp_step(activation, *inputs)()
    ways = {name: _steps.mlp_step(gk.backend(name), activation, *inputs) for name in BACKENDS}
    try:
        ways["torch"] = _steps.torch_mlp_step(_torch(), activation, *inputs)
    except pytest.skip.Exception:
        pass
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


def _openmp_report(env_changes: dict, first: str = "") -> tuple[str, str]:
    """(what gradkernels reports about libgomp's wait, what libgomp printed of its settings as it
    loaded) in a new process that loads every backend, after running `first`."""
    env = {k: v for k, v in os.environ.items() if k not in _threads.OPENMP_VARIABLES}
    env.update(env_changes, OMP_DISPLAY_ENV="VERBOSE")
    code = (f"{first}\nimport os, gradkernels as gk\ngk.backends()\n"
            "assert 'GOMP_SPINCOUNT' not in os.environ or os.environ.get('GOMP_SPINCOUNT') == "
            f"{env_changes.get('GOMP_SPINCOUNT')!r}\nprint(gk._threads.openmp_wait)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip().splitlines()[-1], result.stderr


def _openmp_loaded() -> bool:
    return "GOMP_SPINCOUNT" in _openmp_report({})[1]


def test_libgomp_loads_with_a_short_spin_and_the_environment_is_left_as_it_was():
    report, settings = _openmp_report({})
    if "GOMP_SPINCOUNT" not in settings:
        pytest.skip("no backend here loads libgomp")
    assert report == f"GOMP_SPINCOUNT={_threads.OPENMP_SPIN_COUNT} (gradkernels' default)"
    assert f"GOMP_SPINCOUNT = '{_threads.OPENMP_SPIN_COUNT}'" in settings


@pytest.mark.parametrize("variable, value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "12345")])
def test_a_wait_policy_the_user_set_is_left_alone(variable, value):
    report, settings = _openmp_report({variable: value})
    assert report == f"{variable}={value} (set by the user)"
    if variable == "GOMP_SPINCOUNT" and _openmp_loaded():
        assert "GOMP_SPINCOUNT = '12345'" in settings


def test_a_libgomp_loaded_before_gradkernels_keeps_its_own_settings():
    """PyTorch ships a libgomp of the same name; imported first, it is the one our kernels share."""
    _torch()
    report, settings = _openmp_report({}, first="import torch\ntorch.ones(1)")
    assert report == "libgomp's own defaults (it was loaded before gradkernels)"
    assert f"GOMP_SPINCOUNT = '{_threads.OPENMP_SPIN_COUNT}'" not in settings
