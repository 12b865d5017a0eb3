"""gradkernels.dask against the in-memory call: softmax_cross_entropy on 1 GiB of float32 logits
(262,144 x 1,024; GRADKERNELS_BENCH_SIZES=small: 16 MiB) with the C backend, in this process or
on a LocalCluster of 1 or 2 worker processes with one chunk per core (standard normal logits,
drawn in each place). The Dask paths keep the
gradient on the workers (persisted) and bring back the loss: what a data-parallel training step
does. Skipped where Dask is not installed (the dask extra)."""

import resource
import time

import numpy as np

import gradkernels as gk
from ._common import SIZES

ROWS = 2**14 if SIZES == ["small"] else 2**18
CLASSES = 1024
CORES = gk._threads.MAX_THREADS


class _Paths:
    """Sets up `in_memory` (the call in this process) and, for a path over Dask, `over_dask` (the
    same step on a fresh LocalCluster, warmed up, its warm-up's results freed)."""

    def setup(self, path):
        try:
            import dask.array as da
            import distributed

            import gradkernels.dask as gd
        except ImportError as exc:
            raise NotImplementedError(f"Dask is not installed ({exc})") from None
        self.gradient = None  # the last sample's
        rng = np.random.default_rng(0)
        logits = rng.standard_normal((ROWS, CLASSES), dtype=np.float32)
        labels = rng.integers(0, CLASSES, ROWS)
        bk = gk.backend("c")
        self.in_memory = lambda: bk.softmax_cross_entropy(logits, labels)
        self.cluster = self.client = None
        if path == "in memory":
            return
        workers = int(path.split()[0])
        self.cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=CORES // workers, processes=True, dashboard_address=None,
            env={"OPENBLAS_NUM_THREADS": "1"},
        )
        self.client = client = distributed.Client(self.cluster)
        # One chunk per core, made where it stays, as data loaded on the workers is: a chunk that
        # came over the network can sit at an address unaligned for float32, which every call
        # would then copy (see the README's Scaling out).
        chunks = da.random.default_rng(0).standard_normal((ROWS, CLASSES), dtype=np.float32, chunks=(ROWS // CORES, -1))
        chunks = chunks.persist()
        distributed.wait(chunks)

        def over_dask():
            loss, grad = gd.softmax_cross_entropy(chunks, labels, backend="c")
            loss, grad = client.persist([loss, grad])
            distributed.wait(grad)
            loss.compute()
            # The next step's keys are these same ones: releasing these results now, not whenever
            # they are collected, makes it compute them again instead of finding them in memory.
            for future in distributed.futures_of([loss, grad]):
                future.release()

        self.over_dask = over_dask
        over_dask()  # the workers' first call imports and warms up
        self.settle()

    def settle(self):
        """Waits (up to 10 s) until the workers hold only the chunks of logits again: freeing a
        step's gradient is not the next step's cost."""
        deadline = time.monotonic() + 10
        while sum(self.client.run(lambda dask_worker: len(dask_worker.data)).values()) > CORES:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers still hold the previous step's results after 10 s")
            time.sleep(0.01)

    def teardown(self, path):
        if self.client is not None:
            self.client.close()
            self.cluster.close()


class SoftmaxCrossEntropyOverDask(_Paths):
    params = [["in memory", "1 worker", "2 workers"]]
    param_names = ["path"]
    timeout = 900
    number = 1
    repeat = (3, 7, 120)

    def time_step(self, path):
        if self.client is None:
            self.gradient = self.in_memory()  # freed after the timing, as the Dask step's is
        else:
            self.over_dask()

    def track_peak_mebibytes_per_process(self, path):
        """The largest peak resident memory of the processes that hold the data: this one in
        memory, else the workers."""
        if self.client is None:
            self.in_memory()
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.over_dask()
        peaks = self.client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return max(peaks.values())

    track_peak_mebibytes_per_process.unit = "MiB"


class DaskOverInMemory(_Paths):
    """The Dask step's time over the in-memory call's, the median of 9 ratios of one of each
    taken back to back: this host's noise, which can double a step for seconds, hits both alike."""

    params = [["1 worker", "2 workers"]]
    param_names = ["path"]
    timeout = 900

    def track_ratio(self, path):
        ratios = []
        for _ in range(9):
            start = time.perf_counter()
            result = self.in_memory()
            middle = time.perf_counter()
            del result  # freed outside the timing, as the Dask step's gradient is
            middle_after_free = time.perf_counter()
            self.over_dask()
            ratios.append((time.perf_counter() - middle_after_free) / (middle - start))
            self.settle()
        return float(np.median(ratios))

    track_ratio.unit = "x"
