import os
import tempfile

import hypothesis
import numpy as np
import pytest

import gradkernels as gk
from gradkernels import _tuning

# The tests must not follow a table that `python -m gradkernels tune` left in the user's cache:
# "auto" follows the table shipped in the package here (subprocesses inherit the variable).
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="gradkernels-tests-cache-")
_tuning.forget()

hypothesis.settings.register_profile("default", deadline=None, max_examples=40, derandomize=True)
hypothesis.settings.load_profile("default")

AVAILABLE_BACKENDS = [name for name, info in gk.backends().items() if info["available"]]


def pytest_addoption(parser):
    parser.addoption(
        "--backend", action="append", choices=list(gk.backends()), help="run the per-backend tests on these only"
    )


def pytest_configure(config):
    for name in config.getoption("backend") or ():
        if name not in AVAILABLE_BACKENDS:
            raise pytest.UsageError(f"--backend {name}: not available here ({gk.backends()[name]['reason']})")


# The kernels' own tests, which run once more per ISA variant of the C backend that this CPU runs
# besides the one the process runs ("c-baseline" on an AVX2 machine).
VARIANT_MODULES = {"test_activations", "test_softmax", "test_losses", "test_linear", "test_fused_linear",
                   "test_fuzz", "test_validation", "test_worked_example", "test_torch_parity"}


def _other_c_variants() -> list[str]:
    if "c" not in AVAILABLE_BACKENDS:
        return []
    from gradkernels import _cbackend

    return [variant for variant in _cbackend.RUNNABLE if variant != _cbackend.VARIANT]


def pytest_generate_tests(metafunc):
    """The `bk` fixture's backends: every available one, or those named with --backend (.ci/run
    runs the C backend alone under the sanitizers), and in VARIANT_MODULES every other runnable
    variant of the C backend."""
    if "bk" in metafunc.fixturenames:
        chosen = list(metafunc.config.getoption("backend") or AVAILABLE_BACKENDS)
        if "c" in chosen and metafunc.module.__name__ in VARIANT_MODULES:
            chosen += [f"c-{variant}" for variant in _other_c_variants()]
        metafunc.parametrize("bk", chosen, indirect=True)


@pytest.fixture
def bk(request):
    """The ops bound to each available backend (or C variant) in turn: the suite runs once per backend."""
    name, _, variant = request.param.partition("-")
    return gk.backend(name, variant or None)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def unscaled_parallel_thresholds(monkeypatch):
    """The kernels' parallel crossovers as measured, not scaled up for libgomp's default spin
    (gradkernels._threads), in every thread: a test of the parallel paths then needs arrays of a
    few MB, not hundreds."""
    from gradkernels import _threads

    monkeypatch.setattr(_threads, "process_parallel_scale", 1)


@pytest.fixture
def unavailable_backend(monkeypatch):
    """The name of a backend that this test sees as unavailable (whatever is installed): numba,
    with a reason, as if it were not installed; bindings made before are dropped and after are
    dropped again."""
    from gradkernels import _backends

    gk.backends()  # loads every backend, so the monkeypatched entry replaces a real one
    monkeypatch.setitem(_backends._loaded, "numba",
                        _backends.BackendInfo("numba", None, "switched off by this test", None))
    gk.backend.cache_clear()
    yield "numba"
    gk.backend.cache_clear()
