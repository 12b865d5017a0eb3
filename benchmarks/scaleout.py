"""gradkernels.dask against the in-memory call: softmax_cross_entropy on 1 GiB of float32 logits
(262,144 x 1,024; GRADKERNELS_BENCH_SIZES=small: 16 MiB) with the C backend, in this process or
on a LocalCluster of 1 or 2 worker processes with one chunk per core. The Dask paths keep the
gradient on the workers (persisted) and bring back the loss: what a data-parallel training step
does. Skipped where Dask is not installed (the dask extra)."""

import resource

import numpy as np

import gradkernels as gk
from ._common import SIZES

ROWS = 2**14 if SIZES == ["small"] else 2**18
CLASSES = 1024
CORES = gk._backends.MAX_THREADS


class SoftmaxCrossEntropyOverDask:
    params = [["in memory", "1 worker", "2 workers"]]
    param_names = ["path"]
    timeout = 900
    number = 1
    repeat = (3, 7, 120)

    def setup(self, path):
        try:
            import dask.array as da
            import distributed

            import gradkernels.dask as gd
        except ImportError as exc:
            raise NotImplementedError(f"Dask is not installed ({exc})") from None
        rng = np.random.default_rng(0)
        logits = rng.standard_normal((ROWS, CLASSES), dtype=np.float32)
        labels = rng.integers(0, CLASSES, ROWS)
        self.cluster = self.client = None
        if path == "in memory":
            bk = gk.backend("c")
            self.step = lambda: bk.softmax_cross_entropy(logits, labels)
            return
        workers = int(path.split()[0])
        self.cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=CORES // workers, processes=True, dashboard_address=None,
            env={"OPENBLAS_NUM_THREADS": "1"},
        )
        self.client = distributed.Client(self.cluster)
        chunks = da.from_array(logits, chunks=(ROWS // CORES, -1)).persist()  # one chunk per core
        distributed.wait(chunks)

        def step():
            loss, grad = gd.softmax_cross_entropy(chunks, labels, backend="c")
            loss, grad = self.client.persist([loss, grad])
            distributed.wait(grad)
            loss.compute()
            # The next step's keys are these same ones: releasing these results now, not whenever
            # they are collected, makes it compute them again instead of finding them in memory.
            for future in distributed.futures_of([loss, grad]):
                future.release()

        self.step = step
        self.step()  # the workers' first call imports and warms up

    def teardown(self, path):
        if self.client is not None:
            self.client.close()
            self.cluster.close()

    def time_step(self, path):
        self.step()

    def track_peak_mebibytes_per_process(self, path):
        """The largest peak resident memory of the processes that hold the data: this one in
        memory, else the workers."""
        self.step()
        if self.client is None:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peaks = self.client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return max(peaks.values())

    track_peak_mebibytes_per_process.unit = "MiB"
