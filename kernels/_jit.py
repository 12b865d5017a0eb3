"""How every Numba kernel is compiled and parallelised, in one place."""

import importlib

import numba
from numba.np.ufunc import parallel as _numba_parallel

from .. import _threads
from .._threads import get_num_threads


def _thread_safe_layer() -> bool:
    """Whether parallel kernels can run on a threading layer that tolerates launches from several
    Python threads at once (TBB or OpenMP). Numba's workqueue layer aborts the process when two
    threads launch together, so without a safe layer the kernels run serially.

    Unless the user chose a layer, ask Numba for a thread-safe one. This only narrows Numba's own
    default order (TBB, OpenMP, workqueue), and only while no parallel code has run yet."""
    if _numba_parallel._is_initialized:  # a layer is already fixed for this process
        return numba.threading_layer() != "workqueue"
    chosen = numba.config.THREADING_LAYER
    if chosen == "workqueue":
        return False
    for module in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            importlib.import_module(module)
        except Exception:  # the layer's library is missing (ImportError) or unusable (OSError)
            continue
        if chosen == "default":
            numba.config.THREADING_LAYER = "threadsafe"
        return True
    return False


THREAD_SAFE = _thread_safe_layer()

# Two flag sets, one rule. A loop that writes arrays is compiled exactly as written (no fastmath):
# when its output aliases an input, LLVM's runtime alias check sends it down the scalar loop
# instead of the vector one, and only IEEE-exact code gives both the same bits. A loop that only
# reads and reduces has no alias check and one path, so it may reassociate, which is what lets a
# floating-point sum vectorize. Never "nnan"/"ninf": NaN and Inf keep their IEEE meaning.
WRITE_FASTMATH: set[str] = set()
REDUCE_FASTMATH = {"reassoc"}

# error_model="numpy": division by zero gives IEEE inf/NaN instead of a Python exception, which is
# the semantics the formulas want, and removes a branch that stops vectorization.
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}

# Elements per parallel task of a kernel that sums (the elementwise losses). Fixed, not derived
# from the thread count, so that the per-chunk partial sums, and hence the results, are the same
# for every thread count. Kernels that only map elements split by thread count instead (their
# results do not depend on the split).
CHUNK = 1 << 14
TASKS_PER_THREAD = 4  # a little slack for a thread that starts late on a shared machine

# Below these sizes, times _threads.parallel_scale(), a parallel launch costs more than it saves
# where kernels run in training: between two GEMMs. With a short libgomp spin the pool's threads
# are asleep by then and waking one costs ~100 microseconds on a VM; measured so on a 2-core Zen 3,
# serial against 2 threads: sigmoid 1.15x at 2^18 elements (0.76x at 2^17), relu_backward 1.29x at
# 2^21 (0.72x at 2^20). The scale is chosen per call (gradkernels._threads). The C backend uses
# the same crossovers.
PARALLEL_MIN_ELEMENTS = 1 << 21
PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL = 1 << 18


def kernel(fn):
    """A serial kernel that writes: no Python objects, the GIL released, compiled per dtype, cached."""
    return numba.njit(fastmath=WRITE_FASTMATH, **_OPTIONS)(fn)


def row_kernel(fn):
    """The work on one row, inlined into each caller at Numba's level: a call per row would pass
    every array as seven scalars and cost more than a short row's arithmetic. Same flags as its
    callers (which are kernels too), so inlining changes no result."""
    return numba.njit(fastmath=WRITE_FASTMATH, inline="always", **_OPTIONS)(fn)


def parallel_kernel(fn):
    return numba.njit(fastmath=WRITE_FASTMATH, parallel=True, **_OPTIONS)(fn)


def reduction(fn):
    """A read-only loop that returns sums: reassociation lets LLVM keep one partial sum per lane."""
    return numba.njit(fastmath=REDUCE_FASTMATH, **_OPTIONS)(fn)


def go_parallel(size: int, threshold: int = PARALLEL_MIN_ELEMENTS) -> bool:
    """Whether a call of `size` elements should run on several threads; if so, sets Numba's count
    for this calling thread to gradkernels.get_num_threads()."""
    # the size alone decides most calls, before the scale is looked up
    if size < threshold or size < threshold * _threads.parallel_scale() or not THREAD_SAFE:
        return False
    threads = get_num_threads()
    if threads < 2:
        return False
    numba.set_num_threads(threads)
    return True


def parallel_split(size: int, threshold: int = PARALLEL_MIN_ELEMENTS) -> int:
    """0 to run an elementwise kernel serially, else the elements per parallel task: a multiple of
    64 (whole mask bytes, whole cache lines), TASKS_PER_THREAD tasks per thread."""
    if not go_parallel(size, threshold):
        return 0
    tasks = get_num_threads() * TASKS_PER_THREAD
    return -(-size // (tasks * 64)) * 64
