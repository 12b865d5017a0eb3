import inspect
import json
import os
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

import gradkernels as gk
from gradkernels import _backends, _catalog, _ops, _threads
from helpers import layout


def test_backends_reports_every_backend():
    info = gk.backends()
    assert set(info) == {"numpy", "numba", "c"}
    for name, entry in info.items():
        assert set(entry) == {"available", "reason", "version", "threads", "variant"}
        assert isinstance(entry["available"], bool)
        assert (entry["reason"] is None) == entry["available"], name
        assert isinstance(entry["threads"], int)
    assert info["numpy"]["available"] and info["numpy"]["version"] == np.__version__
    assert info["numpy"]["variant"] is None


_MAX_ISA_PROBE = "import json, gradkernels as gk; print(json.dumps(gk.backends()['c']))"


@pytest.mark.skipif(not gk.backends()["c"]["available"], reason="needs the C backend")
@pytest.mark.parametrize("cap", ["avx512", "avx2", "baseline", "AVX2 "])
def test_max_isa_caps_the_c_variant_at_the_best_this_cpu_runs(cap):
    """GRADKERNELS_MAX_ISA, read when the backend loads: the best runnable variant at or below the
    cap, never one the CPU lacks (an AVX-512 cap on an AVX2 CPU runs AVX2)."""
    from gradkernels import _cbackend

    done = subprocess.run([sys.executable, "-c", _MAX_ISA_PROBE], capture_output=True, text=True, check=True,
                          env=dict(os.environ, GRADKERNELS_MAX_ISA=cap))
    variant = json.loads(done.stdout)["variant"]
    assert variant in _cbackend.RUNNABLE
    order = list(_cbackend.MAX_ISA_LEVELS)
    allowed = [v for v in _cbackend.RUNNABLE if v not in order or order.index(v) >= order.index(cap.strip().lower())]
    assert variant == allowed[0]


@pytest.mark.skipif(not gk.backends()["c"]["available"], reason="needs the C backend")
def test_an_unknown_max_isa_makes_the_c_backend_unavailable_with_the_reason():
    done = subprocess.run([sys.executable, "-c", _MAX_ISA_PROBE], capture_output=True, text=True, check=True,
                          env=dict(os.environ, GRADKERNELS_MAX_ISA="sse9"))
    entry = json.loads(done.stdout)
    assert entry["available"] is False and "GRADKERNELS_MAX_ISA='sse9'" in entry["reason"]


@pytest.mark.skipif(not gk.backends()["c"]["available"], reason="needs the C backend")
def test_a_c_backend_bound_to_each_runnable_variant():
    from gradkernels import _cbackend

    x = np.linspace(-4, 4, 1000)
    want = gk.backend("numpy").sigmoid(x)
    for variant in _cbackend.RUNNABLE:
        bound = gk.backend("c", variant)
        assert bound.variant == variant and variant in repr(bound)
        np.testing.assert_allclose(bound.sigmoid(x), want, rtol=1e-15)
    with pytest.raises(ValueError, match="does not run here"):
        gk.backend("c", "no-such-isa")
    with pytest.raises(ValueError, match="no variants"):
        gk.backend("numpy", "avx2")


def test_default_is_auto_and_auto_resolves_to_an_available_backend():
    assert gk.get_backend() == "auto"
    assert gk.backend("auto").name in [n for n, b in gk.backends().items() if b["available"]]


def test_set_backend_and_use_backend():
    try:
        gk.set_backend("numpy")
        assert gk.get_backend() == "numpy"
        with gk.use_backend("auto"):
            assert gk.get_backend() == "auto"
            with gk.use_backend("numpy"):
                assert gk.get_backend() == "numpy"
            assert gk.get_backend() == "auto"
        assert gk.get_backend() == "numpy"
    finally:
        gk.set_backend("auto")


def test_use_backend_is_local_to_its_thread():
    seen = {}
    inside, release = threading.Event(), threading.Event()

    def worker():
        with gk.use_backend("numpy"):
            seen["worker"] = gk.get_backend()
            inside.set()
            release.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    seen["main"] = gk.get_backend()
    release.set()
    t.join()
    assert seen == {"worker": "numpy", "main": "auto"}


def test_unknown_and_unavailable_backends(unavailable_backend):
    with pytest.raises(ValueError, match="unknown backend 'cuda'; choose one of 'numpy', 'numba', 'c', 'auto'"):
        gk.set_backend("cuda")
    with pytest.raises(TypeError, match="backend name must be a str, got int"):
        gk.backend(3)
    unavailable = [name for name, entry in gk.backends().items() if not entry["available"]]
    assert unavailable_backend in unavailable
    for name in unavailable:
        with pytest.raises(RuntimeError, match=f"backend '{name}' is not available: "):
            gk.set_backend(name)
        with pytest.raises(RuntimeError, match=f"backend '{name}' is not available: "):
            gk.backend(name)
        with pytest.raises(RuntimeError):
            with gk.use_backend(name):
                pass
    assert gk.get_backend() == "auto"


def test_every_public_op_exists_with_one_signature_everywhere(bk):
    for name, impl in _ops.OPS.items():
        public = getattr(gk, name)
        assert name in gk.__all__
        expected = list(inspect.signature(impl).parameters.values())[1:]
        assert list(inspect.signature(public).parameters.values()) == expected, name
        assert inspect.signature(getattr(bk, name)) == inspect.signature(public), name
        assert public.__doc__ == impl.__doc__


def test_every_backend_implements_the_kernel_contract():
    # each kernel's own signature against its declaration (under a `quiet` wrapper, the function it
    # runs): the parameter names for the Python backends; the C glue's kernels are made by factories,
    # one per form, under the factories' parameter names, so for them the arity
    for name, entry in gk.backends().items():
        if not entry["available"]:
            continue
        kernels = _backends.info(name).kernels
        assert set(vars(kernels)) == set(_catalog.KERNEL_NAMES), name
        for kernel in _catalog.KERNELS:
            signature = inspect.signature(inspect.unwrap(getattr(kernels, kernel.name)), follow_wrapped=False)
            if name == "c":
                signature.bind(*kernel.parameters)
            else:
                assert tuple(signature.parameters) == kernel.parameters, (name, kernel.name)


def test_num_threads():
    n = gk.get_num_threads()
    assert 1 <= n <= _threads.MAX_THREADS
    try:
        gk.set_num_threads(1)
        assert gk.get_num_threads() == 1
        gk.set_num_threads(np.int64(1))
    finally:
        gk.set_num_threads(n)
    with pytest.raises(ValueError, match="n must be between 1 and"):
        gk.set_num_threads(0)
    with pytest.raises(ValueError, match="n must be between 1 and"):
        gk.set_num_threads(_threads.MAX_THREADS + 1)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        gk.set_num_threads(2.0)
    with pytest.raises(TypeError, match="n must be an int, got bool"):
        gk.set_num_threads(True)


def test_results_are_bit_identical_across_calls(bk, rng):
    z = rng.standard_normal((64, 33)).astype(np.float32)
    labels = rng.integers(0, 33, 64)
    first = bk.softmax_cross_entropy(z, labels, label_smoothing=0.1)
    for _ in range(3):
        again = bk.softmax_cross_entropy(z, labels, label_smoothing=0.1)
        assert again[0] == first[0] and np.array_equal(again[1], first[1])


# ---------------------------------------------------------------------------------------------
# The API layer keeps the kernel contract that every backend relies on.


def _spy(calls):
    def wrap(name, kernel):
        def checked(*args):
            calls.append(name)
            arrays = [x for x in args if isinstance(x, np.ndarray)]
            declared = _catalog.KERNEL[name]
            n_out = len(declared.outputs)
            outputs = [x for x in args[:n_out] if x is not None]
            inputs = [x for x in args[n_out:] if isinstance(x, np.ndarray)]
            assert all(x.size > 0 for x in outputs), f"{name} called with an empty output"
            if declared.layout == "linear":
                named = dict(zip(declared.parameters, args))
                scratch, dw = named.get("dz"), named.get("dw")  # dz in da's layout, dw in w's
                if dw is not None:
                    assert dw.flags.c_contiguous if named["w"].flags.c_contiguous else dw.flags.f_contiguous
                assert all(x.flags.c_contiguous for x in outputs if x is not scratch and x is not dw)
                assert all(x.flags.c_contiguous or x.flags.f_contiguous for x in inputs)
                assert not any(np.may_share_memory(o, i) for o in outputs for i in inputs), f"{name}: overlap"
                if name == "linear_relu_backward":  # dz, da and a: one layout
                    assert len({x.flags.c_contiguous for x in args[3:6]}) == 1
            else:
                assert all(x.flags.c_contiguous for x in arrays), f"{name}: non-contiguous array"
                if declared.layout == "rows":
                    assert args[0].ndim == 2 and all(x.shape == args[0].shape for x in inputs if x.ndim == 2)
                else:
                    assert all(x.ndim == 1 for x in arrays)
                for o in outputs:
                    for i in inputs:
                        same = o.ctypes.data == i.ctypes.data and o.nbytes == i.nbytes
                        assert same or not np.may_share_memory(o, i), f"{name}: partial overlap"
            return kernel(*args)
        return checked

    ref = _backends.info("numpy").kernels
    return types.SimpleNamespace(**{n: wrap(n, getattr(ref, n)) for n in _catalog.KERNEL_NAMES})


@pytest.mark.parametrize("kind", ["C", "F", "strided", "reversed"])
def test_api_layer_honours_the_kernel_contract(rng, kind):
    calls = []
    spy = _spy(calls)
    x = layout(rng.standard_normal((4, 6)), kind)
    t = layout(rng.uniform(size=(4, 6)), kind)
    labels = np.array([0, 5, -100, 2])
    ops = _ops.OPS
    for name in ("relu", "relu_with_mask", "sigmoid", "tanh", "softmax", "log_softmax"):
        ops[name](spy, x)
        ops[name](spy, x.copy(), out=np.empty((4, 12))[:, ::2])
        y = x.copy()
        ops[name](spy, y, out=y)
    ops["leaky_relu"](spy, x, 0.1)
    ops["relu_backward_from_mask"](spy, x, ops["relu_with_mask"](spy, x)[1])
    for name in ("relu_backward", "sigmoid_backward", "tanh_backward", "softmax_backward", "log_softmax_backward"):
        ops[name](spy, x, t)
        buf = rng.standard_normal(30)
        ops[name](spy, buf[:24].reshape(4, 6), buf[6:].reshape(4, 6), out=buf[3:27].reshape(4, 6))
    ops["leaky_relu_backward"](spy, x, t, 0.1)
    z = x.copy()
    ops["softmax_cross_entropy"](spy, z, labels, label_smoothing=0.1, out=z)
    ops["softmax_cross_entropy"](spy, x, t)
    ops["softmax_cross_entropy"](spy, np.empty((0, 6)), np.empty(0, int))
    for reduction in ("mean", "none"):
        ops["sigmoid_binary_cross_entropy"](spy, x, t, reduction=reduction)
        ops["mse"](spy, x, t, reduction=reduction)
        ops["mse"](spy, np.empty((0, 3)), np.empty((0, 3)), reduction=reduction)
    w = layout(rng.standard_normal((6, 6)), kind)
    sq = x[:, :4].copy() if kind != "F" else np.asfortranarray(x[:, :4])
    ops["linear"](spy, x, w, np.ones(6))
    ops["linear"](spy, sq, layout(rng.standard_normal((4, 4)), kind), out=sq)
    ops["linear"](spy, np.empty((3, 0)), np.empty((0, 2)))
    ops["linear_backward"](spy, t, x, w)
    ops["linear_backward"](spy, np.empty((0, 6)), np.empty((0, 6)), w)
    ops["linear_relu"](spy, x, w, np.ones(6))
    a = ops["linear_relu"](spy, x, w)
    for with_bias in (True, False):
        ops["linear_relu_backward"](spy, t, a, x, w, with_bias=with_bias)
        ops["linear_relu_backward"](spy, t, np.asfortranarray(a), x, w, with_bias=with_bias)
    ops["linear_cross_entropy"](spy, x, w, np.ones(6), labels, chunk_size=3)
    ops["linear_cross_entropy"](spy, np.empty((0, 6)), w, None, np.empty(0, int))
    assert set(calls) == set(_catalog.KERNEL_NAMES)


def _first_output_recorder(written):
    """Reference kernels that note the array each call writes its result to."""
    ref = _backends.info("numpy").kernels

    def wrap(kernel):
        def recorded(*args):
            written.append(args[0])
            return kernel(*args)
        return recorded

    return types.SimpleNamespace(**{n: wrap(getattr(ref, n)) for n in _catalog.KERNEL_NAMES})


def test_an_out_the_kernel_may_write_is_written_directly(rng):
    """out=x in place, or a fresh contiguous out, reaches the kernel itself (no scratch buffer and
    copy); an out the kernel must not write as it reads (the soft targets of a cross-entropy,
    which it reads after writing a row) goes through a scratch buffer and still gets the result."""
    written = []
    kernels = _first_output_recorder(written)
    ops = _ops.OPS
    x, t = rng.standard_normal((4, 6)), rng.uniform(size=(4, 6))
    t /= t.sum(axis=1, keepdims=True)
    cases = [("sigmoid", lambda: (x.copy(),), 0), ("relu", lambda: (x.copy(),), 0),
             ("tanh_backward", lambda: (x.copy(), np.tanh(x)), 1), ("softmax", lambda: (x.copy(),), 0),
             ("mse", lambda: (x.copy(), t.copy()), 0), ("softmax_cross_entropy", lambda: (x.copy(), t.copy()), 0)]
    for name, arguments, aliased in cases:
        for in_place in (True, False):
            inputs = arguments()
            out = inputs[aliased] if in_place else np.empty_like(x)
            expected = ops[name](kernels, *[a.copy() for a in inputs])
            written.clear()
            result = ops[name](kernels, *inputs, out=out)
            assert written[0] is out or np.shares_memory(written[0], out), (name, in_place)
            got = result[1] if isinstance(result, tuple) else result
            np.testing.assert_allclose(got, expected[1] if isinstance(expected, tuple) else expected, rtol=1e-12)
    q = t.copy()
    expected = ops["softmax_cross_entropy"](kernels, x, t.copy())[1]
    written.clear()
    ops["softmax_cross_entropy"](kernels, x, q, out=q)
    assert not np.shares_memory(written[0], q)
    np.testing.assert_allclose(q, expected, rtol=1e-12)


def test_disabled_jit_leaves_a_working_package_and_says_why():
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, gradkernels as gk\n"
        "b = gk.backends()['numba']\n"
        "print(b['available'], b['reason'])\n"
        "print(gk.backend('auto').name, gk.softmax(np.zeros((2, 3)))[0, 0])\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.splitlines() == [
        "False NUMBA_DISABLE_JIT is set: the kernels would run as plain Python",
        f"{'c' if gk.backends()['c']['available'] else 'numpy'} 0.3333333333333333",
    ]


def test_a_broken_c_build_leaves_a_working_package_and_says_why(tmp_path):
    """A C extension that is there but cannot load (here: its bytes overwritten) is reported with
    the loader's reason; "auto" and every op go on without it."""
    import os
    import pathlib
    import shutil
    import subprocess
    import sys

    installed = pathlib.Path(gk.__file__).parent
    extensions = list(installed.glob("_ckernels*"))
    if not extensions:
        pytest.skip("the C extension is not built here")
    copy = tmp_path / "gradkernels"
    shutil.copytree(installed, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for extension in copy.glob("_ckernels*"):
        extension.write_bytes(b"not a shared library")
    code = (
        "import numpy as np, gradkernels as gk\n"
        "assert gk.__file__.startswith(%r)\n"
        "b = gk.backends()['c']\n"
        "print(b['available'], b['reason'])\n"
        "print(gk.backend('auto').name, gk.softmax(np.zeros((2, 3)))[0, 0])\n" % str(copy)
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    available, reason = out.stdout.splitlines()[0].split(" ", 1)
    assert available == "False" and reason.startswith("the C extension failed to import:")
    assert out.stdout.splitlines()[1] == f"{'numba' if gk.backends()['numba']['available'] else 'numpy'} 0.3333333333333333"


def test_thread_limit_is_local_to_the_block_and_the_thread():
    full = gk.get_num_threads()
    seen = {}
    with _threads.thread_limit(1):
        assert gk.get_num_threads() == 1
        with _threads.thread_limit(full + 5):  # a limit above the setting does not raise it
            assert gk.get_num_threads() == full
        other = threading.Thread(target=lambda: seen.setdefault("other", gk.get_num_threads()))
        other.start()
        other.join()
    assert seen["other"] == full and gk.get_num_threads() == full
    with pytest.raises(ValueError, match="n must be at least 1"):
        with _threads.thread_limit(0):
            pass


def test_quiet_turns_numpy_errors_off_inside_and_restores_the_callers_state():
    from gradkernels._quiet import quiet

    big = np.full(2, np.finfo(np.float32).max)

    @quiet
    def overflow():
        return big * 2, np.geterr()

    with np.errstate(all="raise"):
        doubled, inside = overflow()
        assert np.isinf(doubled).all() and set(inside.values()) == {"ignore"}
        with pytest.raises(FloatingPointError):
            big * 2  # the caller's state again
    with np.errstate(all="raise"):
        with pytest.raises(ZeroDivisionError):
            quiet(lambda: 1 / 0)()  # exceptions pass through
        assert set(np.geterr().values()) == {"raise"}  # and the caller's state is back after them
