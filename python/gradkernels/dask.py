"""Losses and gradients over Dask arrays chunked along rows, on any Dask scheduler, a
dask.distributed cluster included: each chunk goes through gradkernels' kernels in the worker
that holds it (`pip install "gradkernels[dask]"`).

What crosses workers: the chunks stay where they are, and the gradients keep their inputs' chunks.
One number per chunk (its loss, and the count or weight of its rows that a mean divides by) and,
for a linear layer, one (D, H) dw and one (H,) db per chunk go through a tree reduction whose shape
depends only on the chunking, so results are deterministic for a fixed chunking. w, b and the class
weights are broadcast: one key in the graph, sent once to each worker that needs it.

Every function returns Dask objects built from one task per chunk; compute them together,
`dask.compute(loss, grad)`, so that each chunk's kernel runs once. Shape and dtype errors are
raised here, at the call; errors that depend on values (a label out of range) when computed.

Each task runs the kernels on at most `threads_per_task` threads (default 1): Dask already runs
one chunk per worker thread, and kernel threads on top of those would oversubscribe the cores.
The README's "Scaling out" says how to size workers and their BLAS threads.
"""

import operator

import dask
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from . import _ops, _threads

__all__ = ["linear_backward", "linear_cross_entropy", "mse", "sigmoid_binary_cross_entropy", "softmax_cross_entropy"]


def _run(op_name, backend, threads, *args, **kwargs):
    """One chunk's op, in the worker: on `backend` (None: the backend in force there)."""
    import gradkernels

    ops = gradkernels if backend is None else gradkernels.backend(backend)
    with _threads.thread_limit(threads):
        return getattr(ops, op_name)(*args, **kwargs)


def _row_chunked(name: str, arr, row_chunks=None):
    """`arr` as a Dask array chunked along its first axis only, which a Dask array must already be
    (with `row_chunks`, into those same chunks); or, for a NumPy array, a list of its parts along
    `row_chunks`, each of which goes into its chunk's task as it is: no task of its own to wait for."""
    if not isinstance(arr, da.Array):
        arr = np.asarray(arr)
        if row_chunks is None:
            raise TypeError(f"{name} must be a Dask array, got {type(arr).__name__}")
        if arr.ndim == 0 or arr.shape[0] != sum(row_chunks):
            raise ValueError(f"{name} has shape {arr.shape}; it must have {sum(row_chunks)} rows")
        ends = np.cumsum(row_chunks)
        return [arr[end - rows:end] for end, rows in zip(ends, row_chunks)]
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (rows), got a 0-d array")
    for axis, chunks in enumerate(arr.chunks[1:], start=1):
        if len(chunks) > 1:
            raise ValueError(
                f"{name} must be chunked along rows only, but axis {axis} has chunks {chunks}: "
                f"use {name}.rechunk({{{axis}: -1}})"
            )
    if row_chunks is not None and arr.chunks[0] != tuple(row_chunks):
        raise ValueError(f"{name} has row chunks {arr.chunks[0]} but the first array has {tuple(row_chunks)}")
    return arr


def _chunk_calls(op_name, arguments, options, backend, threads):
    """One delayed call of `op_name(*arguments, **options)` per row chunk, each Dask array among
    the arguments replaced by its chunk, each list by its item for the chunk, everything else
    passed whole."""
    n_chunks = next(len(a.chunks[0]) for a in arguments if isinstance(a, da.Array))
    split = [a.to_delayed().ravel() if isinstance(a, da.Array) else a if isinstance(a, list) else [a] * n_chunks
             for a in arguments]
    run = dask.delayed(_run, pure=True)
    return [run(op_name, backend, threads, *chunk, **options) for chunk in zip(*split)]


def _results(sources, index, name, chunks, dtype, stacked=False) -> da.Array:
    """The item at `index` of each source's result (a call's, or its `_reduced` part's), one chunk
    each, as one Dask array with `chunks`: a single getitem task per chunk, on the worker that holds
    the source (`stacked`: with a new leading axis of one per source, to reduce over)."""
    name = f"{name}-" + dask.base.tokenize([s.key for s in sources], index, stacked)
    pick = _stacked_item if stacked else operator.getitem
    zeros = (0,) * (len(chunks) - 1)
    layer = {(name, i) + zeros: (pick, s.key, index) for i, s in enumerate(sources)}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=sources)
    return da.Array(graph, name, chunks, dtype=dtype)


def _stacked_item(result, index):
    return result[index][np.newaxis]


def _rows_of(calls, index, rows, trailing, dtype) -> da.Array:
    """The result at `index` of each call, one row chunk each, as one Dask array."""
    return _results(calls, index, "rows", (tuple(rows),) + tuple((n,) for n in trailing), dtype)


def _reduced(calls, indices):
    """Per call, one task taking its results at `indices`: those reduced across chunks (a loss, a
    partial dw or db). With the pickers of its row-chunked results, these tasks are a call's only
    consumers, so its memory is freed once they have run; at once for a row-chunked result the
    caller does not compute. (Dask runs a call's several small consumers late: with one each for
    the loss, dw and db, every chunk's unwanted dx stayed in memory until the end.)"""
    pick = dask.delayed(_pick, pure=True)
    return [pick(call, indices) for call in calls]


def _pick(result, indices):
    return tuple(result[i] for i in indices)


def _tree_sum(parts, index, shape, dtype) -> da.Array:
    """The sum over chunks of the `_reduced` parts' item `index`, by Dask's tree reduction (fixed
    for a chunking)."""
    chunks = ((1,) * len(parts),) + tuple((n,) for n in shape)
    return _results(parts, index, "partial-sum", chunks, dtype, stacked=True).sum(axis=0)


def _sum_in_order(dtype, index, *parts):
    return dtype.type(sum(float(part[index]) for part in parts))


def _total(parts, index, dtype) -> da.Array:
    """The sum of the `_reduced` parts' numbers at `index` (the chunks' losses, each already divided
    by the whole denominator for "mean"), taken in chunk order by one task, as a 0-d array."""
    name = "loss-" + dask.base.tokenize([p.key for p in parts], index)
    layer = {(name,): (_sum_in_order, np.dtype(dtype), index, *[p.key for p in parts])}
    return da.Array(HighLevelGraph.from_collections(name, layer, dependencies=parts), name, (), dtype=dtype)


def _loss(calls, rows, row_shape_of_none, reduction, dtype):
    """The per-row (or per-element) losses for "none"; else the sum of the chunks' losses."""
    if reduction == "none":
        return _rows_of(calls, 0, rows, row_shape_of_none, dtype)
    return _total(_reduced(calls, (0,)), 0, dtype)


def _broadcast(arr):
    """A NumPy array every chunk's task reads: one key in the graph, not a copy in each task."""
    return None if arr is None else dask.delayed(np.asarray(arr), pure=True)


def _counted(labels, weight, ignore_index) -> float:
    """A mean's denominator, or a chunk's part of it, by the ops' own rule (a label outside the
    classes is left to the chunk's op, which raises the documented error)."""
    weight = None if weight is None else np.asarray(weight, np.float64)
    return float(_ops.class_denominator(np.asarray(labels).reshape(-1), ignore_index, weight))


def _class_denominator(labels, weight, ignore_index):
    """The count (or total weight) of the counted rows of integer `labels`: computed here for NumPy
    labels, else as a delayed float, the sum in chunk order of each chunk's part."""
    if not isinstance(labels, da.Array):
        return _counted(labels, weight, ignore_index)
    count = dask.delayed(_counted, pure=True)
    weight = _broadcast(weight)  # the same key as the chunks' ops read
    return dask.delayed(sum, pure=True)([count(chunk, weight, ignore_index) for chunk in labels.to_delayed().ravel()])


def _cross_entropy_inputs(labels, rows, weight, reduction, ignore_index, label_smoothing, **options):
    """(labels chunked like the rows `rows`, the keyword arguments of each chunk's cross-entropy):
    1-D Dask labels are rechunked so; a "mean" gets the whole array's denominator (the row count
    for probabilities)."""
    labels = labels if isinstance(labels, da.Array) else np.asarray(labels)
    options.update(weight=_broadcast(weight), reduction=reduction, ignore_index=ignore_index,
                   label_smoothing=label_smoothing)
    if reduction == "mean":
        soft = labels.dtype.kind == "f"
        options["denominator"] = float(sum(rows)) if soft else _class_denominator(labels, weight, ignore_index)
    if isinstance(labels, da.Array) and labels.ndim == 1:
        labels = labels.rechunk((rows,))
    return _row_chunked("labels", labels, rows), options


def softmax_cross_entropy(logits, labels, *, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0,
                          backend=None, threads_per_task=1):
    """(loss, dlogits) of `gradkernels.softmax_cross_entropy` over (N, C) logits chunked along rows:
    the mean is over every counted row of the whole array (its total weight with `weight`), and
    dlogits keeps the logits' chunks. Labels: integer classes (N,) or probabilities (N, C), Dask
    (rechunked to the logits' rows if 1-D) or NumPy."""
    logits = _row_chunked("logits", logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {logits.shape}")
    rows = logits.chunks[0]
    labels, options = _cross_entropy_inputs(labels, rows, weight, reduction, ignore_index, label_smoothing)
    calls = _chunk_calls("softmax_cross_entropy", (logits, labels), options, backend, threads_per_task)
    loss = _loss(calls, rows, (), reduction, logits.dtype)
    return loss, _rows_of(calls, 1, rows, logits.shape[1:], logits.dtype)


def _elementwise_loss(op_name, first_name, first, second_name, second, reduction, backend, threads):
    first = _row_chunked(first_name, first)
    rows = first.chunks[0]
    if isinstance(second, da.Array):
        second = second.rechunk(first.chunks)
    second = _row_chunked(second_name, second, rows)
    options = dict(reduction=reduction)
    if reduction == "mean":
        options["denominator"] = float(first.size)
    calls = _chunk_calls(op_name, (first, second), options, backend, threads)
    loss = _loss(calls, rows, first.shape[1:], reduction, first.dtype)
    return loss, _rows_of(calls, 1, rows, first.shape[1:], first.dtype)


def sigmoid_binary_cross_entropy(logits, targets, *, reduction="mean", backend=None, threads_per_task=1):
    """(loss, dlogits) of `gradkernels.sigmoid_binary_cross_entropy` over logits chunked along rows;
    targets are rechunked like the logits. The mean is over every element of the whole array."""
    return _elementwise_loss("sigmoid_binary_cross_entropy", "logits", logits, "targets", targets, reduction, backend,
                             threads_per_task)


def mse(pred, target, *, reduction="mean", backend=None, threads_per_task=1):
    """(loss, dpred) of `gradkernels.mse` over predictions chunked along rows; target is rechunked
    like pred. The mean is over every element of the whole array."""
    return _elementwise_loss("mse", "pred", pred, "target", target, reduction, backend, threads_per_task)


def _weights_matrix(w) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (D, H), got shape {w.shape}")
    return w


def linear_backward(dy, x, w, *, with_bias=True, backend=None, threads_per_task=1):
    """(dx, dw, db) of `gradkernels.linear_backward` for dy (N, H) and x (N, D) chunked alike along
    rows, w a NumPy (D, H): dx keeps x's chunks; dw and db are the chunks' partial sums reduced in
    a tree (db is None without bias)."""
    x = _row_chunked("x", x)
    dy = _row_chunked("dy", dy, x.chunks[0])
    w = _weights_matrix(w)
    calls = _chunk_calls("linear_backward", (dy, x, _broadcast(w)), dict(with_bias=with_bias), backend,
                         threads_per_task)
    dx = _rows_of(calls, 0, x.chunks[0], x.shape[1:], x.dtype)
    partials = _reduced(calls, (1, 2))
    dw = _tree_sum(partials, 0, w.shape, x.dtype)
    db = _tree_sum(partials, 1, w.shape[1:], x.dtype) if with_bias else None
    return dx, dw, db


def linear_cross_entropy(x, w, b, labels, *, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0,
                         chunk_size=None, backend=None, threads_per_task=1):
    """(loss, dx, dw, db) of `gradkernels.linear_cross_entropy` for x (N, D) chunked along rows and
    integer labels (N,) (rechunked like x), w (D, C) and b (C,) or None NumPy arrays: each chunk goes
    through the fused kernel (in sub-chunks of `chunk_size` rows) with the whole array's
    denominator; dx keeps x's chunks, dw and db are reduced in a tree."""
    x = _row_chunked("x", x)
    rows = x.chunks[0]
    w = _weights_matrix(w)
    labels, options = _cross_entropy_inputs(labels, rows, weight, reduction, ignore_index, label_smoothing,
                                            chunk_size=chunk_size)
    calls = _chunk_calls("linear_cross_entropy", (x, _broadcast(w), _broadcast(b), labels), options, backend,
                         threads_per_task)
    dx = _rows_of(calls, 1, rows, x.shape[1:], x.dtype)
    if reduction == "none":
        loss, partials = _rows_of(calls, 0, rows, (), x.dtype), _reduced(calls, (2, 3))
    else:
        partials = _reduced(calls, (2, 3, 0))
        loss = _total(partials, 2, x.dtype)
    dw = _tree_sum(partials, 0, w.shape, x.dtype)
    db = None if b is None else _tree_sum(partials, 1, w.shape[1:], x.dtype)
    return loss, dx, dw, db
