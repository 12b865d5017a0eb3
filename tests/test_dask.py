"""gradkernels.dask on a real dask.distributed cluster (two worker processes, started and closed
here) against the in-memory call, on every backend: uneven chunks, a single chunk, empty chunks,
ignored rows all in one chunk."""

import os
import signal
import time

import numpy as np
import pytest

import gradkernels as gk
from helpers import assert_close, linear_cross_entropy_error, product_error, sum_error

# The test extra installs Dask; without it (a bare `pip install .`), these tests are skipped.
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
import dask.array as da  # noqa: E402
import gradkernels.dask as gd  # noqa: E402

ROW_CHUNKS = {
    "uneven": (7, 1, 12, 4),
    "single": (24,),
    "empty chunks": (0, 10, 0, 14, 0),
}


@pytest.fixture(scope="module", autouse=True)
def _environment_restored():
    """Starting a LocalCluster writes its workers' environment (OMP_NUM_THREADS=1,
    MALLOC_TRIM_THRESHOLD_, ...) into this process's os.environ: the subprocesses of later tests
    must not inherit it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def client():
    # One thread per worker and one BLAS thread per process: the two workers fill the two cores.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"OPENBLAS_NUM_THREADS": "1"}) as cluster, distributed.Client(cluster) as c:
        yield c


def _problem(rng, dtype, rows=24, classes=5, features=3):
    z = rng.standard_normal((rows, classes)).astype(dtype)
    labels = rng.integers(0, classes, rows)
    labels[7:8 + 12] = -100  # every row of the third uneven chunk, and the second's
    x = rng.standard_normal((rows, features)).astype(dtype)
    w = rng.standard_normal((features, classes)).astype(dtype)
    b = rng.standard_normal(classes).astype(dtype)
    return z, labels, x, w, b


def _close(actual, expected, dtype, errors=None):
    """Each result against the in-memory call's; `errors`, for results of matrix products, each
    one's bound from the exact value (product_error), doubled here for two such results."""
    for a, e, error in zip(actual, expected, errors or [None] * len(expected), strict=True):
        if e is None:
            assert a is None
        else:
            assert_close(a, e, dtype, error=None if error is None else 2 * error)


@pytest.mark.parametrize("chunks", ROW_CHUNKS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy(client, bk, dtype, rng, chunks, reduction):
    z, labels, *_ = _problem(rng, dtype)
    weight = rng.random(z.shape[1]).astype(dtype)
    Z = da.from_array(z, chunks=(ROW_CHUNKS[chunks], -1))
    options = dict(weight=weight, reduction=reduction, label_smoothing=0.1)
    loss, grad = dask.compute(*gd.softmax_cross_entropy(Z, labels, backend=bk.name, **options))
    _close((loss, grad), bk.softmax_cross_entropy(z, labels, **options), dtype)
    soft = bk.softmax(z[::-1].copy())
    _close(dask.compute(*gd.softmax_cross_entropy(Z, da.from_array(soft, chunks=Z.chunks), reduction=reduction,
                                                 backend=bk.name)),
           bk.softmax_cross_entropy(z, soft, reduction=reduction), dtype)


@pytest.mark.parametrize("chunks", ROW_CHUNKS, ids=str)
def test_elementwise_losses(client, bk, dtype, rng, chunks):
    z, *_ = _problem(rng, dtype)
    t = rng.random(z.shape).astype(dtype)
    Z = da.from_array(z, chunks=(ROW_CHUNKS[chunks], -1))
    for name in ("sigmoid_binary_cross_entropy", "mse"):
        for reduction in ("mean", "none"):
            result = dask.compute(*getattr(gd, name)(Z, t, reduction=reduction, backend=bk.name))
            _close(result, getattr(bk, name)(z, t, reduction=reduction), dtype)


@pytest.mark.parametrize("chunks", ROW_CHUNKS, ids=str)
def test_linear_layer(client, bk, dtype, rng, chunks):
    z, labels, x, w, b = _problem(rng, dtype)
    X = da.from_array(x, chunks=(ROW_CHUNKS[chunks], -1))
    DY = da.from_array(z, chunks=X.chunks[:1] + (-1,))
    errors = [product_error(z, w.T, dtype), product_error(x.T, z, dtype), sum_error(z, dtype)]
    for with_bias in (True, False):
        result = dask.compute(*gd.linear_backward(DY, X, w, with_bias=with_bias, backend=bk.name))
        _close(result, bk.linear_backward(z, x, w, with_bias=with_bias), dtype, errors)
    for bias in (b, None):
        result = dask.compute(*gd.linear_cross_entropy(X, w, bias, labels, chunk_size=5, backend=bk.name))
        _close(result, bk.linear_cross_entropy(x, w, bias, labels), dtype,
               linear_cross_entropy_error(x, w, bias, labels, dtype))


def test_deterministic_for_a_fixed_chunking(client, rng):
    z, labels, x, w, _ = _problem(rng, np.float32, rows=400)
    X = da.from_array(x, chunks=(37, -1))
    DY = da.from_array(z, chunks=(37, -1))
    first = dask.compute(*gd.linear_backward(DY, X, w))
    for _ in range(3):
        for a, b in zip(first, dask.compute(*gd.linear_backward(DY, X, w)), strict=True):
            np.testing.assert_array_equal(a, b)


def _graph(*results):
    graph = {}
    for result in results:
        graph.update(result.__dask_graph__())
    return graph, lambda key: dask.core.get_dependencies(graph, key)


def test_results_are_few_tasks_from_their_chunks_kernel(rng):
    """Every task between a kernel and a result adds to a step's latency: a gradient chunk is
    picked from its kernel's task, the loss sums one task per chunk that picks from its kernel, dw
    sums the picks of those, and NumPy labels ride in the kernels' tasks (a kernel waits for its
    logits chunk only)."""
    z, labels, x, w, b = _problem(rng, np.float32)
    logits = da.from_array(z, chunks=(8, -1))
    x = da.from_array(x, chunks=(8, -1))
    loss, grad = gd.softmax_cross_entropy(logits, labels)
    _, _, dw, _ = gd.linear_cross_entropy(x, w, b, labels)
    graph, deps = _graph(loss, grad, dw)
    kernels = {key for key in graph if str(key).startswith("_run-")}
    assert len(kernels) == 6
    chunks = set(dask.core.flatten(logits.__dask_keys__())) | set(dask.core.flatten(x.__dask_keys__()))
    broadcast = {key for key in graph if str(key).startswith("ndarray-")}  # w and b
    assert all(len(deps(k) - broadcast) == 1 and deps(k) - broadcast <= chunks for k in kernels)

    def one_from(key, sources):
        return len(deps(key)) == 1 and deps(key) <= sources

    assert all(one_from(k, kernels) for k in dask.core.flatten(grad.__dask_keys__()))
    picks = {key for key in graph if str(key).startswith("_pick-")}
    assert len(picks) == 6 and all(one_from(k, kernels) for k in picks)
    assert len(deps(loss.__dask_keys__()[0])) == 3 and deps(loss.__dask_keys__()[0]) <= picks
    partials = [k for k in graph if str(k[0]).startswith("partial-sum-")]
    assert len(partials) == 3 and all(one_from(k, picks) for k in partials)


def test_a_result_not_computed_is_freed_with_its_kernels_task(rng):
    """Without dx, each chunk's kernel task has one consumer, so the chunk's dx goes as soon as
    that has run: with several, Dask ran them last and kept every chunk's dx until then."""
    z, labels, x, w, b = _problem(rng, np.float32)
    x = da.from_array(x, chunks=(8, -1))
    loss, _, dw, db = gd.linear_cross_entropy(x, w, b, labels)
    _, dw_of_dy, db_of_dy = gd.linear_backward(da.from_array(z, chunks=(8, -1)), x, w)
    for results in ((loss, dw, db), (dw_of_dy, db_of_dy)):
        graph, deps = _graph(*results)
        kernels = [key for key in graph if str(key).startswith("_run-")]
        consumers = {k: [key for key in graph if k in deps(key)] for k in kernels}
        assert len(kernels) == 3 and all(len(c) == 1 for c in consumers.values()), consumers


def test_the_readmes_realignment_leaves_every_chunk_aligned(client, rng):
    """Chunks sent from the client can land at addresses unaligned for their dtype (each op would
    copy them, every call); the README's one-time fix."""
    z = rng.standard_normal((4000, 37)).astype(np.float32)
    x = da.from_array(z, chunks=(500, -1)).persist()
    realigned = x.map_blocks(np.require, requirements="A").persist()
    aligned = dask.compute(*[dask.delayed(lambda chunk: chunk.flags.aligned)(c) for c in realigned.to_delayed().ravel()])
    assert all(aligned)
    np.testing.assert_array_equal(realigned.compute(), z)


def test_bad_chunking_and_shapes(rng):
    z, labels, x, w, _ = _problem(rng, np.float64)
    with pytest.raises(ValueError, match=r"logits must be chunked along rows only, but axis 1 has chunks \(2, 2, 1\)"):
        gd.softmax_cross_entropy(da.from_array(z, chunks=(8, 2)), labels)
    with pytest.raises(TypeError, match="logits must be a Dask array, got ndarray"):
        gd.softmax_cross_entropy(z, labels)
    with pytest.raises(ValueError, match=r"dy has row chunks \(12, 12\) but the first array has \(8, 8, 8\)"):
        gd.linear_backward(da.from_array(z, chunks=(12, -1)), da.from_array(x, chunks=(8, -1)), w)
    with pytest.raises(ValueError, match=r"labels has shape \(23,\); it must have 24 rows"):
        gd.softmax_cross_entropy(da.from_array(z, chunks=(8, -1)), labels[:-1])
    with pytest.raises(ValueError, match=r"w must be 2-D \(D, H\), got shape \(3,\)"):
        gd.linear_backward(da.from_array(z, chunks=(8, -1)), da.from_array(x, chunks=(8, -1)), w[:, 0])


def test_bad_labels_raise_when_computed(client, rng):
    z, labels, *_ = _problem(rng, np.float64)
    labels[3] = 99
    for weight in (None, np.ones(5)):
        for given in (labels, da.from_array(labels, chunks=4)):
            loss, grad = gd.softmax_cross_entropy(da.from_array(z, chunks=(8, -1)), given, weight=weight)
            with pytest.raises(ValueError, match=r"labels\[3\] = 99 is outside \[0, 5\)"):
                dask.compute(loss, grad)


def test_the_tasks_thread_limit_reaches_the_kernels(client):
    """threads_per_task caps gradkernels' threads inside each task (and only there)."""
    seen = client.run(lambda: gk.get_num_threads())
    assert all(n == gk._threads.MAX_THREADS for n in seen.values())
    limited = dask.delayed(gd._run)("get_num_threads", None, 1).compute()
    assert limited == 1


def test_a_worker_killed_mid_computation_changes_nothing(rng):
    """SIGKILL one of two worker processes while the chunks run: its nanny starts a new one, the
    scheduler recomputes what was lost (x's chunks are generated on the workers), and the results
    are bit-identical to an undisturbed run."""
    X = da.random.default_rng(0).standard_normal((60_000, 64), chunks=(1_000, -1), dtype=np.float32)
    w = rng.standard_normal((64, 300)).astype(np.float32)
    labels = rng.integers(0, 300, len(X))

    def layer():
        return gd.linear_cross_entropy(X, w, None, labels, backend="numpy")[:3]

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"OPENBLAS_NUM_THREADS": "1"}) as cluster, distributed.Client(cluster) as c:
        undisturbed = dask.compute(*layer())
        x = X.compute()
        pids = c.run(os.getpid)
        futures = c.compute(list(layer()))
        deadline = time.monotonic() + 30
        while sum(len(keys) for keys in c.has_what().values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)  # some chunks done: their results die with the worker
        assert not all(f.done() for f in futures)
        os.kill(pids[min(pids)], signal.SIGKILL)
        recovered = c.gather(futures)
        assert set(c.run(os.getpid).values()) != set(pids.values())  # one worker is new
    for a, b in zip(recovered, undisturbed, strict=True):
        np.testing.assert_array_equal(a, b)
    # another blocking of the same products than the whole-array call's: equal to within their bounds
    _close(recovered, gk.backend("numpy").linear_cross_entropy(x, w, None, labels)[:3], np.float32,
           linear_cross_entropy_error(x, w, None, labels, np.float32)[:3])


def test_scale_demo_descends_to_the_in_memory_parameters(capsys):
    from gradkernels import __main__ as cli

    assert cli.main(["scale-demo", "--rows", "20000", "--features", "8", "--iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("(agree, limit 1e-09)") == 2 and "DISAGREE" not in out


def test_scale_demo_fails_when_the_two_descents_differ(monkeypatch, capsys):
    """A kernel changed in this process only (the workers keep theirs): the in-memory descent
    moves elsewhere, and the demo says so."""
    from gradkernels import __main__ as cli

    kernels = gk._backends.info("numpy").kernels
    correct = kernels.sigmoid_binary_cross_entropy

    def off_by_a_little(dz, *args):
        total = correct(dz, *args)
        dz *= 1.001
        return total

    monkeypatch.setattr(kernels, "sigmoid_binary_cross_entropy", off_by_a_little)
    assert cli.main(["scale-demo", "--rows", "20000", "--features", "8", "--iterations", "3", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    assert "logistic regression: parameters differ" in out and "DISAGREE" in out
