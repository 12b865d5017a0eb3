"""What is particular to the C backend: its elementary functions, the checks that keep C inside
its arrays whatever Python passes, threads, the generated machine code, and how it builds."""

import concurrent.futures
import json
import os
import pathlib
import platform
import re
import runpy
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import elementary
import gradkernels as gk
from gradkernels import _backends, _threads
from gradkernels.kernels._jit import PARALLEL_MIN_ELEMENTS

if not gk.backends()["c"]["available"]:
    pytest.skip(f"c backend: {gk.backends()['c']['reason']}", allow_module_level=True)

from gradkernels import _cbackend  # noqa: E402
from gradkernels._ckernels import ffi, lib  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNELS = _backends.info("c").kernels


@pytest.fixture(params=_cbackend.RUNNABLE)
def variant(request):
    """Each ISA variant of the build that this CPU runs."""
    return request.param


def _applier(variant):
    def apply(name, x):
        y = np.empty_like(x)
        fn = _cbackend.functions("vmath", variant)[x.dtype]
        ctype = "float[]" if x.dtype == np.float32 else "double[]"
        status = fn(ffi.from_buffer(ctype, y), ffi.from_buffer(ctype, x), x.size, getattr(lib, f"GK_{name.upper()}"))
        assert status == lib.GK_OK
        return y

    return apply


# ---------------------------------------------------------------------------------------------
# The elementary functions (csrc/vmath.h): the Numba backend's algorithms and bounds


@pytest.mark.skipif(not elementary.LONG_DOUBLE_ENOUGH, reason="needs an 80- or 128-bit long double as the exact reference")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", elementary.ULP_CASES)
def test_elementary_function_worst_error(name, dtype, variant):
    x = elementary.sweep(name, dtype)
    assert elementary.worst_ulp(name, x, _applier(variant)(name, x)) <= elementary.ULP_CASES[name][2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_elementary_functions_at_special_values(dtype, variant):
    elementary.check_special_values(_applier(variant), dtype)


@pytest.mark.skipif(not elementary.LONG_DOUBLE_ENOUGH, reason="needs an 80- or 128-bit long double as the exact reference")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_of_nonpositive_arguments_flushes_only_results_below_the_normal_range(dtype, variant):
    elementary.check_exp_nonpositive(_applier(variant), dtype)


def test_an_unknown_function_is_refused(variant):
    x = np.ones(4)
    vmath = _cbackend.functions("vmath", variant)[x.dtype]
    assert vmath(ffi.from_buffer("double[]", x), ffi.from_buffer("double[]", x), 4, 99) == lib.GK_BAD_ARGUMENT


# ---------------------------------------------------------------------------------------------
# Nothing from Python makes C read or write outside an array


def test_a_label_out_of_range_raises_even_past_the_api_layer(rng):
    z = rng.standard_normal((6, 5))
    weight = np.ones(5)
    for bad in (5, -1, 2**40):
        labels = np.array([0, 1, 2, bad, 4, -100], np.int64)
        dz, losses = np.full_like(z, 7.0), np.full(6, 7.0)
        with pytest.raises(ValueError, match="label"):
            KERNELS.softmax_cross_entropy(dz, losses, z, labels, weight, -100, 0.0, 1.0)
        assert np.all(dz == 7.0) and np.all(losses == 7.0), "outputs written before the labels were checked"


BAD_ARGUMENTS = {
    "output too short": lambda x: KERNELS.relu_forward(np.empty(x.size - 1, x.dtype), x),
    "read-only output": lambda x: KERNELS.relu_forward(np.broadcast_to(np.zeros(1, x.dtype), x.shape), x),
    "mixed dtypes": lambda x: KERNELS.relu_backward(np.empty_like(x), x, x.astype(np.float64)),
    "strided input": lambda x: KERNELS.sigmoid_forward(np.empty(x.size // 2, x.dtype), x[::2]),
    "integer input": lambda x: KERNELS.tanh_forward(np.empty(x.size, np.int32), x.astype(np.int32)),
    "short mask": lambda x: KERNELS.relu_backward_mask(np.empty_like(x), x, np.zeros(x.size // 8 - 1, np.uint8)),
    "mask of wrong type": lambda x: KERNELS.relu_forward_mask(np.empty_like(x), np.zeros(x.size // 8, np.int8), x),
    "rows output too small": lambda x: KERNELS.softmax_forward(np.empty((4, 15), x.dtype), x.reshape(4, 16)),
    "short weight": lambda x: KERNELS.softmax_cross_entropy(
        np.empty((8, 8), x.dtype), np.empty(8, x.dtype), x.reshape(8, 8), np.zeros(8, np.int64),
        np.ones(7, x.dtype), -100, 0.0, 1.0),
    "int32 labels": lambda x: KERNELS.softmax_cross_entropy(
        np.empty((8, 8), x.dtype), np.empty(8, x.dtype), x.reshape(8, 8), np.zeros(8, np.int32),
        np.ones(8, x.dtype), -100, 0.0, 1.0),
    "short losses": lambda x: KERNELS.mse(np.empty_like(x), np.empty(3, x.dtype), x, x, 1.0),
    "list, not array": lambda x: KERNELS.relu_forward(np.empty_like(x), list(x)),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_arrays_that_do_not_match_the_sizes_passed_to_c_are_refused(case):
    with pytest.raises(ValueError, match="C kernel"):
        BAD_ARGUMENTS[case](np.linspace(-1, 1, 64, dtype=np.float32))


@pytest.mark.parametrize(
    "status, error", [(lib.GK_BAD_LABEL, ValueError), (lib.GK_NO_MEMORY, MemoryError), (lib.GK_BAD_ARGUMENT, ValueError), (99, RuntimeError)]
)
def test_every_status_becomes_an_exception(status, error):
    _cbackend._check(lib.GK_OK)
    with pytest.raises(error):
        _cbackend._check(status)


# ---------------------------------------------------------------------------------------------
# Threads


def _calls(rng, variant):
    """One call per parallel kernel family, each above its parallel threshold (the C backend's are
    the Numba backend's) with a ragged tail."""
    n = PARALLEL_MIN_ELEMENTS + 3 * (1 << 14) + 123
    z = rng.standard_normal((n // 100, 100)).astype(np.float32)
    t = rng.uniform(size=z.shape).astype(np.float32)
    labels = rng.integers(0, 100, z.shape[0])
    c = gk.backend("c", variant)
    return {
        "softmax_cross_entropy": lambda: c.softmax_cross_entropy(z, labels, label_smoothing=0.1),
        "soft targets": lambda: c.softmax_cross_entropy(z, t / t.sum(axis=1, keepdims=True)),
        "sigmoid_binary_cross_entropy": lambda: c.sigmoid_binary_cross_entropy(z, t),
        "mse": lambda: c.mse(z, t),
        "tanh": lambda: (c.tanh(z),),
        "relu_with_mask": lambda: c.relu_with_mask(z),
        "log_softmax": lambda: (c.log_softmax(z),),
    }


def _same(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(a, b, strict=True))


def test_results_are_bit_identical_for_every_thread_count(rng, variant, unscaled_parallel_thresholds):
    before = gk.get_num_threads()
    try:
        for name, call in _calls(rng, variant).items():
            results = []
            for threads in range(1, _threads.MAX_THREADS + 1):
                gk.set_num_threads(threads)
                results.append(call())
            assert all(_same(results[0], other) for other in results[1:]), name
    finally:
        gk.set_num_threads(before)


def test_python_threads_calling_at_once_get_the_serial_results(rng, unscaled_parallel_thresholds):
    calls = list(_calls(rng, None).values())
    expected = [call() for call in calls]

    def work(_):
        return all(_same(call(), want) for _ in range(5) for call, want in zip(calls, expected, strict=True))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(8)))


def test_the_gil_is_released_while_a_kernel_runs():
    """The main thread runs while another thread is inside a C call.

    The switch interval is set far above the calls' length, so the interpreter never takes the GIL
    from the worker: the main thread, waiting for it, gets it back before the worker has finished
    only if a kernel releases it. Nothing here depends on how fast the kernel is.
    """
    x = np.linspace(-5, 5, 1 << 22, dtype=np.float32)
    y = np.empty_like(x)
    started = threading.Event()
    calls_done = []

    def call():
        started.set()
        for _ in range(8):
            KERNELS.sigmoid_forward(y, x)
        calls_done.append(True)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        worker = threading.Thread(target=call)
        worker.start()
        started.wait()
        finished_before_the_main_thread_ran = bool(calls_done)
        worker.join()
    finally:
        sys.setswitchinterval(switch_interval)
    assert not finished_before_the_main_thread_ran, "the C calls kept the GIL to their end"


# ---------------------------------------------------------------------------------------------
# The machine code and the build


def _extension_path() -> pathlib.Path:
    import gradkernels._ckernels as ext

    return pathlib.Path(ext.__file__)


def _functions(path):
    """name -> its instructions, from objdump's disassembly of the extension."""
    objdump = shutil.which("objdump")
    if objdump is None or platform.machine() != "x86_64":
        pytest.skip("needs objdump on x86-64")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True, check=True).stdout
    if "__asan_" in text:
        pytest.skip("a sanitizer build: its checks are not the code that ships")
    return dict(re.findall(r"<([\w.]+)>:\n(.*?)(?=\n\n|\Z)", text, re.S))


# A variant's vector code: instructions on its full-width registers; for the SSE2 baseline, packed
# arithmetic, comparisons and integer operations on xmm registers (scalar code moves, zeroes, masks
# and compares xmm registers too, never with these).
_VECTOR_CODE = {
    "avx512": re.compile(r"%zmm"),
    "avx2": re.compile(r"%ymm"),
    "baseline": re.compile(r"^\s*[0-9a-f]+:\s+((?!mov|xor|and|or|ucomi|comi|cvts|sqrts|unpck)\w+p[sd]|p(?!xor)\w+)\s.*%xmm",
                           re.M),
}
# What a kernel may call: the OpenMP runtime, the allocator, memset; never libm.
_ALLOWED_CALLS = re.compile(r"<(GOMP_|omp_|malloc|free|calloc|memset|memcpy|__stack_chk_fail|gk_)")


def _kernel_code(functions, kernel, variant):
    """The instructions of a kernel's variant and of the parallel regions OpenMP outlined from it."""
    prefix = f"{kernel}_{variant}"
    return "\n".join(code for name, code in functions.items() if name == prefix or name.startswith(prefix + "._omp_fn."))


_X86_VARIANTS = [v for v in _cbackend.VARIANTS if v in _VECTOR_CODE]
_KERNEL_NAMES = sorted({name.rsplit("_", 1)[0] for name in dir(lib) if re.fullmatch(r"gk_\w+_f(32|64)_baseline", name)})


@pytest.mark.parametrize("variant", _X86_VARIANTS)
def test_every_kernel_is_vector_code_in_every_variant_without_libm_calls(variant):
    """Each variant of the build, whether this CPU runs it or not: a variant whose loops stayed scalar
    (as the AVX2 one did under GCC's default -ftrapping-math) or call libm (fma on the baseline)
    fails here, by name."""
    functions = _functions(_extension_path())
    declared = re.findall(r"^int (gk_\w+_f(?:32|64))\(", (ROOT / "csrc" / "gradkernels.h").read_text(), re.M)
    assert _KERNEL_NAMES == sorted(declared)
    scalar, calling = [], []
    for kernel in _KERNEL_NAMES:
        code = _kernel_code(functions, kernel, variant)
        assert code, f"{kernel}_{variant} is not in the extension"
        if not _VECTOR_CODE[variant].search(code):
            scalar.append(kernel)
        calls = re.findall(r"call\s+\w+\s+(<[^>]+>)", code)
        calling += [f"{kernel}: {c}" for c in calls if not _ALLOWED_CALLS.match(c)]
    assert not scalar, f"no {variant} vector code in {scalar}"
    assert not calling, f"calls out of the kernels: {calling}"


def test_parallel_loops_if_clauses_leave_their_simd_alone():
    """A bare if() on `parallel for simd` applies to simd too: its false case, every serial call,
    forbids vectorizing the loop, while the machine code still holds the vector loop of the
    parallel case (which the test above sees). Every parallel loop's clause names `parallel`."""
    for source in sorted((ROOT / "csrc").glob("*.c")):
        for number, line in enumerate(source.read_text().splitlines(), 1):
            if "GK_OMP(parallel" in line:
                assert "GK_IF_PARALLEL" in line and " if(" not in line, f"{source.name}:{number}: {line.strip()}"


def _build():
    """csrc/build_cffi.py's namespace, as pip install runs it here."""
    return runpy.run_path(str(ROOT / "csrc" / "build_cffi.py"))


@pytest.mark.slow  # the kernel sources compiled 4 times
@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("options", [[], ["-march=native"], ["-fno-openmp"]], ids=["variants", "native", "no-openmp"])
def test_the_sources_compile_without_a_warning(tmp_path, options):
    """Every variant unit as pip builds it; also the native build's (GRADKERNELS_NATIVE) and
    without OpenMP."""
    build = _build()
    flags = [f for f in build["compile_args"] if not f.startswith("-fsanitize")] + ["-Werror", "-fPIC", "-I",
                                                                                     str(ROOT / "csrc")]
    units = {"native": None} if options == ["-march=native"] else build["variants"]
    sources = {"cpu": (ROOT / "csrc" / "cpu.c").read_text()}
    sources.update({name: build["variant_unit"](name, units[name][0] if units[name] else None) for name in units})
    compiles = {}
    for name, text in sources.items():  # side by side: the units are independent
        source = tmp_path / f"{name}.c"
        source.write_text(text)
        command = ["cc", *flags, *options, "-c", str(source), "-o", str(tmp_path / f"{name}.o")]
        compiles[name] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, compile_ in compiles.items():
        _, stderr = compile_.communicate()
        assert compile_.returncode == 0, f"{name}: {stderr}"


def _install(tmp_path, env):
    """pip install of a copy of the tracked sources (no stale build/ directory) into tmp_path/site."""
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tmp_path / "site"),
                    str(source)], check=True, env=dict(os.environ, **env), capture_output=True)
    probe = textwrap.dedent("""
        import json, numpy as np, gradkernels as gk
        c = gk.backends()["c"]
        if c["available"]:
            z = np.linspace(-3, 3, 40).reshape(4, 10)
            ok = np.allclose(gk.backend("c").softmax(z), gk.backend("numpy").softmax(z))
        else:
            ok = None
        print(json.dumps([c, ok]))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")), cwd=tmp_path)
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_without_a_c_compiler_the_install_succeeds_and_says_why_c_is_unavailable(tmp_path):
    backend, _ = _install(tmp_path, {"CC": "false"})
    assert backend["available"] is False
    assert "failed to import" in backend["reason"]


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("cc") is None, reason="needs the git checkout and cc")
def test_without_openmp_the_c_backend_runs_on_one_thread(tmp_path):
    # A compiler that refuses -fopenmp, as one without OpenMP support does.
    wrapper = tmp_path / "cc-without-openmp"
    wrapper.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && exit 1; done\nexec cc "$@"\n')
    wrapper.chmod(0o755)
    # one variant, not every one (a third of the build's time): OpenMP is the build's, not a variant's
    backend, correct = _install(tmp_path, {"CC": str(wrapper), "GRADKERNELS_NATIVE": "1"})
    assert backend["available"] is True and backend["threads"] == 1
    assert correct


@pytest.mark.parametrize("classes", [1, 2, 15, 16, 17, 33])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_cross_entropy_agrees_with_the_reference_on_both_sides_of_the_few_class_batches(rng, classes, dtype):
    """Up to 16 classes the C kernel takes 64 rows at a time as vector lanes, above it one row at a
    time: both against the NumPy reference, with a ragged last batch, ignored rows and smoothing."""
    from helpers import assert_close

    rows = 3 * 64 + 5
    z = (3 * rng.standard_normal((rows, classes))).astype(dtype)
    labels = rng.integers(0, classes, rows)
    labels[::7] = -100
    weight = rng.uniform(0.5, 2, classes).astype(dtype)
    for smoothing in (0.0, 0.1):
        got = gk.backend("c").softmax_cross_entropy(z, labels, weight=weight, label_smoothing=smoothing, reduction="none")
        want = gk.backend("numpy").softmax_cross_entropy(  # in float64, on the same values
            z.astype(np.float64), labels, weight=weight.astype(np.float64), label_smoothing=smoothing, reduction="none")
        for a, b in zip(got, want, strict=True):
            assert_close(a, b, dtype)
