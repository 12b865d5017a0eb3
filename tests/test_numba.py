"""What is particular to the Numba backend: how it compiles, caches, vectorizes and threads, and the
accuracy of its elementary functions."""

import importlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import elementary
import gradkernels as gk

if not gk.backends()["numba"]["available"]:
    pytest.skip(f"numba backend: {gk.backends()['numba']['reason']}", allow_module_level=True)

import numba  # noqa: E402
from numba.core.registry import CPUDispatcher  # noqa: E402

from gradkernels.kernels import _jit, _vmath  # noqa: E402

MODULES = ["activations", "softmax", "losses", "linear", "_reductions", "_vmath"]


def _dispatchers():
    for module_name in MODULES:
        module = importlib.import_module(f"gradkernels.kernels.{module_name}")
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == module.__name__:
                yield module_name, name, obj


def test_every_jitted_function_uses_the_named_flag_sets():
    seen = 0
    for module_name, name, dispatcher in _dispatchers():
        options = dispatcher.targetoptions
        expected = _jit.REDUCE_FASTMATH if module_name == "_reductions" else _jit.WRITE_FASTMATH
        assert options.get("fastmath", set()) == expected, (module_name, name, options.get("fastmath"))
        assert options.get("nogil") and options.get("error_model") == "numpy", (name, options)
        assert type(dispatcher._cache).__name__ == "FunctionCache", f"{name} is not cached"
        seen += 1
    assert seen > 40


def _run(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True).stdout


def test_a_second_process_loads_kernels_from_the_cache():
    code = """
        import numpy as np, gradkernels as gk
        from gradkernels.kernels import softmax
        gk.backend("numba").softmax(np.ones((3, 5), np.float32))
        stats = softmax._softmax.stats
        print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
    """
    _run(code)  # compiles and writes the cache if this environment has not yet
    hits, misses = map(int, _run(code).split())
    assert (hits, misses) == (1, 0)


def test_import_compiles_nothing_and_a_call_compiles_only_its_kernel():
    out = _run("""
        import sys, numpy as np
        import gradkernels as gk
        print("numba" in sys.modules)
        gk.backend("numba").relu(np.ones(10, np.float32))
        from gradkernels import kernels
        import importlib
        from numba.core.registry import CPUDispatcher
        used = []
        for mod in ("activations", "softmax", "losses", "linear", "_reductions", "_vmath"):
            m = importlib.import_module("gradkernels.kernels." + mod)
            used += [n for n, d in vars(m).items() if isinstance(d, CPUDispatcher) and d.signatures]
        print(sorted(used))
    """).splitlines()
    assert out == ["False", "['_relu']"]


def _float32_ir(dispatcher):
    return dispatcher.inspect_llvm(dispatcher.signatures[0])


def test_float32_elementwise_kernels_compute_in_float32():
    # A Python float constant in a kernel would silently promote the loop to float64: look for
    # any double-precision vector in the compiled float32 code.
    from gradkernels.kernels import activations

    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    y, mask = np.empty_like(x), np.empty(125, np.uint8)
    calls = {
        "_relu": (y, x), "_relu_mask": (y, mask, x), "_relu_grad": (y, x, x), "_relu_grad_mask": (y, x, mask),
        "_leaky_relu": (y, x, 0.1), "_leaky_relu_grad": (y, x, x, 0.1), "_sigmoid": (y, x),
        "_sigmoid_grad": (y, x, x), "_tanh": (y, x), "_tanh_grad": (y, x, x),
    }
    for name, args in calls.items():
        fresh = numba.njit(fastmath=_jit.WRITE_FASTMATH, error_model="numpy")(getattr(activations, name).py_func)
        fresh(*args)
        ir = _float32_ir(fresh)
        assert not re.search(r"x double>", ir), f"{name} computes in float64 vectors"
        assert not re.search(r"fpext float", ir), f"{name} widens float32 to float64"


# ---------------------------------------------------------------------------------------------
# The elementary functions: worst error in ulp over the whole input range.


def _applier(fn):
    @numba.njit(error_model="numpy")
    def apply(y, x):
        for i in range(x.size):
            y[i] = fn(x[i])
    return apply


APPLY = {name: _applier(getattr(_vmath, name)) for name in (*elementary.FUNCTIONS, "exp_nonpositive")}


def _apply(name, x):
    y = np.empty_like(x)
    APPLY[name](y, x)
    return y


@pytest.mark.skipif(not elementary.LONG_DOUBLE_ENOUGH, reason="needs an 80- or 128-bit long double as the exact reference")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", elementary.ULP_CASES)
def test_elementary_function_worst_error(name, dtype):
    x = elementary.sweep(name, dtype)
    assert elementary.worst_ulp(name, x, _apply(name, x)) <= elementary.ULP_CASES[name][2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_elementary_functions_at_special_values(dtype):
    elementary.check_special_values(_apply, dtype)


@pytest.mark.skipif(not elementary.LONG_DOUBLE_ENOUGH, reason="needs an 80- or 128-bit long double as the exact reference")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_of_nonpositive_arguments_flushes_only_results_below_the_normal_range(dtype):
    elementary.check_exp_nonpositive(_apply, dtype)


def _cpu_has(feature):
    try:
        ckernels = importlib.import_module("gradkernels._ckernels")
    except ImportError:
        return False
    return bool(ckernels.lib.gk_cpu_features() & getattr(ckernels.lib, f"GK_CPU_{feature}"))


@pytest.mark.skipif(not _cpu_has("AVX2"), reason="checks x86 vector registers")
@pytest.mark.parametrize("name", APPLY)
def test_elementary_functions_vectorize(name):
    apply = APPLY[name]
    x = np.ones(64, np.float32)
    apply(np.empty_like(x), x)
    asm = apply.inspect_asm(apply.signatures[0])
    assert re.search(r"%[yz]mm\d+", asm), f"{name} did not vectorize"
    assert not re.search(r"call\w*\s+\w*(exp|tanh|log)", asm), f"{name} calls a scalar libm function"


def test_row_max_vectorizes_and_skips_nan_while_the_row_still_turns_nan():
    from gradkernels.kernels._reductions import row_max

    z = np.array([1.0, np.nan, 3.0, -np.inf], np.float32)
    assert row_max(z) == 3.0
    assert np.all(np.isnan(gk.backend("numba").softmax(z)))
    if _cpu_has("AVX2"):  # a fresh compile: Numba cannot show the code of a cached one
        fresh = numba.njit(fastmath=_jit.REDUCE_FASTMATH, error_model="numpy")(row_max.py_func)
        fresh(z)
        assert re.search(r"vmax\w+\s+%[yz]mm", fresh.inspect_asm(fresh.signatures[0]))


# ---------------------------------------------------------------------------------------------
# Threads


# op -> (module, its parallel driver): the test checks that the parallel path really ran
PARALLEL_DRIVERS = {
    "softmax_cross_entropy": ("losses", "_cross_entropy_rows"),
    "softmax_cross_entropy few classes": ("losses", "_cross_entropy_batched_tasks"),
    "sigmoid_binary_cross_entropy": ("losses", "_bce_chunks"),
    "mse": ("losses", "_mse_chunks"),
    "tanh": ("activations", "_tanh_chunks"),
    "relu_with_mask": ("activations", "_relu_mask_chunks"),
}


@pytest.mark.parametrize("op", PARALLEL_DRIVERS)
def test_results_are_bit_identical_for_every_thread_count(rng, op, unscaled_parallel_thresholds):
    bk = gk.backend("numba")
    n = 2 * _jit.PARALLEL_MIN_ELEMENTS + 3 * _jit.CHUNK + 123  # above every threshold, ragged tail
    z = rng.standard_normal((n // 100, 100)).astype(np.float32)
    t = rng.uniform(size=z.shape).astype(np.float32)
    labels = rng.integers(0, 100, z.shape[0])
    call = {
        "softmax_cross_entropy": lambda: bk.softmax_cross_entropy(z, labels),
        "softmax_cross_entropy few classes": lambda: bk.softmax_cross_entropy(
            z.reshape(-1, 10), labels.repeat(10) % 10, weight=np.linspace(0.5, 2, 10, dtype=np.float32), label_smoothing=0.1),
        "sigmoid_binary_cross_entropy": lambda: bk.sigmoid_binary_cross_entropy(z, t),
        "mse": lambda: bk.mse(z, t),
        "tanh": lambda: (bk.tanh(z),),
        "relu_with_mask": lambda: bk.relu_with_mask(z),
    }[op]
    before = gk.get_num_threads()
    try:
        results = []
        for threads in range(1, gk._threads.MAX_THREADS + 1):
            gk.set_num_threads(threads)
            results.append(call())
    finally:
        gk.set_num_threads(before)
    module, driver = PARALLEL_DRIVERS[op]
    if gk._threads.MAX_THREADS > 1:
        assert getattr(importlib.import_module(f"gradkernels.kernels.{module}"), driver).signatures
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


@pytest.mark.parametrize("classes", [1, 2, 15, 16, 17, 33])
def test_few_class_batches_agree_with_the_row_kernel(rng, classes):
    """The batched kernel (up to SMALL_CLASSES) against the per-row one, on the same inputs."""
    from gradkernels.kernels import losses

    rows = 3 * losses.BATCH + 5  # a ragged last batch
    z = (3 * rng.standard_normal((rows, classes))).astype(np.float32)
    labels = rng.integers(0, classes, rows)
    labels[::7] = -100
    weight = rng.uniform(0.5, 2, classes).astype(np.float32)
    results = []
    for kernel, extra in ((losses._cross_entropy_batched, (0, rows)), (losses._cross_entropy, ())):
        dz, out = np.empty_like(z), np.empty(rows, np.float32)
        kernel(dz, out, z, labels, weight, -100, 0.1, 1 / rows, *extra)
        results.append((dz, out))
    from helpers import assert_close

    assert_close(results[0][0], results[1][0], np.float32)
    assert_close(results[0][1], results[1][1], np.float32)


_CONCURRENT_CALLS = """
import sys, threading, numpy as np, gradkernels as gk
bk = gk.backend("numba")
rng = np.random.default_rng(0)
z = rng.standard_normal((512, 1000)).astype(np.float32)
labels = rng.integers(0, 1000, 512)
x = rng.standard_normal(300_000).astype(np.float32)
calls = (lambda: bk.softmax_cross_entropy(z, labels)[1], lambda: bk.sigmoid(x),
         lambda: bk.relu_with_mask(x)[1], lambda: bk.mse(x, 0.5 * x)[0])
expected = [call() for call in calls]
mismatches = []
def work():
    for _ in range(20):
        for call, want in zip(calls, expected, strict=True):
            if not np.array_equal(call(), want):
                mismatches.append(1)
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(gk.backends()["numba"]["threads"], len(mismatches))
"""


def test_python_threads_calling_at_once_get_the_serial_results():
    threads, mismatches = map(int, _run(_CONCURRENT_CALLS).split())
    assert mismatches == 0 and threads == gk.get_num_threads()


def test_without_a_thread_safe_layer_kernels_run_serially_instead_of_aborting():
    # Numba's workqueue layer aborts the process on concurrent launches from Python threads.
    import os

    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    done = subprocess.run([sys.executable, "-c", _CONCURRENT_CALLS], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "0"]
