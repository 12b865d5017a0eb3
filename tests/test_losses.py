import itertools
import math

import numpy as np
import pytest

import gradkernels as gk
import oracle
from helpers import LAYOUTS, assert_close, layout, unchanged

REDUCTIONS = ["mean", "sum", "none"]


def _problem(rng, dtype, rows=7, classes=5, lead=()):
    z = (3 * rng.standard_normal(lead + (rows, classes))).astype(dtype)
    labels = rng.integers(0, classes, lead + (rows,))
    labels.flat[::3] = -100
    weight = rng.uniform(0.2, 2.0, classes).astype(dtype)
    q = rng.dirichlet(np.ones(classes), lead + (rows,)).astype(dtype)
    return z, labels, weight, q


def _check_scalar_loss(loss, dtype, reduction):
    if reduction != "none":
        assert isinstance(loss, np.generic) and loss.dtype == dtype, (type(loss), getattr(loss, "dtype", None))


# ---------------------------------------------------------------------------------------------
# softmax + cross-entropy


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target_kind", ["labels", "soft"])
def test_cross_entropy_matches_pytorch_rules(bk, dtype, rng, reduction, smoothing, weighted, target_kind):
    z, labels, weight, q = _problem(rng, dtype)
    targets = labels if target_kind == "labels" else q
    w = weight if weighted else None
    with unchanged(z, targets, weight):
        loss, grad = bk.softmax_cross_entropy(z, targets, weight=w, reduction=reduction, label_smoothing=smoothing)
    want_loss, want_grad = oracle.cross_entropy(z, targets, w, reduction, -100, smoothing)
    _check_scalar_loss(loss, dtype, reduction)
    assert grad.dtype == dtype and grad.shape == z.shape
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype)


@pytest.mark.parametrize("lead", [(), (2,), (2, 3)], ids=str)
def test_cross_entropy_over_leading_axes(bk, dtype, rng, lead):
    z, labels, weight, q = _problem(rng, dtype, rows=4, lead=lead)
    for targets in (labels, q):
        loss, grad = bk.softmax_cross_entropy(z, targets, weight=weight, reduction="none")
        want_loss, want_grad = oracle.cross_entropy(z, targets, weight, "none")
        assert loss.shape == z.shape[:-1]
        assert_close(loss, want_loss, dtype)
        assert_close(grad, want_grad, dtype)


def test_unbatched_logits_take_a_scalar_label(bk, dtype):
    z = np.array([1.0, 2.0, 0.5], dtype)
    loss, grad = bk.softmax_cross_entropy(z, np.int64(1))
    want_loss, want_grad = oracle.cross_entropy(z, np.int64(1))
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64])
def test_any_integer_label_dtype(bk, rng, label_dtype):
    z, labels, _, _ = _problem(rng, np.float64)
    labels = np.abs(labels) % z.shape[-1]
    loss, grad = bk.softmax_cross_entropy(z, labels.astype(label_dtype))
    want_loss, want_grad = bk.softmax_cross_entropy(z, labels)
    assert loss == want_loss and np.array_equal(grad, want_grad)


def test_ignore_index_may_be_a_valid_class(bk, dtype, rng):
    z, _, _, _ = _problem(rng, dtype)
    labels = np.array([0, 2, 2, 1, 4, 2, 3])
    loss, grad = bk.softmax_cross_entropy(z, labels, ignore_index=2)
    want_loss, want_grad = oracle.cross_entropy(z, labels, ignore_index=2)
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype)
    assert np.all(grad[labels == 2] == 0)


def test_mean_over_zero_counted_rows_is_nan_with_zero_gradient(bk, dtype, rng):
    z, _, weight, _ = _problem(rng, dtype)
    labels = np.full(z.shape[0], -100)
    for w in (None, weight):
        for eps in (0.0, 0.2):
            loss, grad = bk.softmax_cross_entropy(z, labels, weight=w, label_smoothing=eps)
            assert np.isnan(loss) and loss.dtype == dtype
            assert np.all(grad == 0)
    loss, grad = bk.softmax_cross_entropy(z, labels, reduction="sum")
    assert loss == 0 and np.all(grad == 0)
    # a zero total weight counts as no rows
    loss, grad = bk.softmax_cross_entropy(z, np.zeros(z.shape[0], int), weight=np.r_[0, weight[1:]])
    assert np.isnan(loss) and np.all(grad == 0)


def test_empty_batch(bk, dtype):
    z = np.empty((0, 4), dtype)
    loss, grad = bk.softmax_cross_entropy(z, np.empty(0, int))
    assert np.isnan(loss) and grad.shape == (0, 4)
    loss, grad = bk.softmax_cross_entropy(z, np.empty(0, int), reduction="sum")
    assert loss == 0
    loss, _ = bk.softmax_cross_entropy(z, np.empty((0, 4), dtype))
    assert np.isnan(loss)


def test_cross_entropy_against_finite_differences(bk, rng):
    z, labels, weight, q = _problem(rng, np.float64)
    for targets, w, eps, reduction in itertools.product((labels, q), (None, weight), (0.0, 0.3), REDUCTIONS):
        def forward(a, t=targets, w=w, eps=eps, reduction=reduction):
            return bk.softmax_cross_entropy(a, t, weight=w, label_smoothing=eps, reduction=reduction)[0]

        def backward(g, a, t=targets, w=w, eps=eps, reduction=reduction):
            grad = bk.softmax_cross_entropy(a, t, weight=w, label_smoothing=eps, reduction=reduction)[1]
            return np.asarray(g)[..., None] * grad if reduction == "none" else g * grad

        gk.gradcheck(forward, backward, z)


def test_extreme_logits_give_finite_loss_and_gradient(bk, dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]], dtype)
    labels = np.array([1, 1, 2])
    with np.errstate(all="raise"):
        loss, grad = bk.softmax_cross_entropy(z, labels, label_smoothing=0.1, reduction="none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert_close(loss[0], 0.9 * 2e4 + 0.1 / 3 * (2e4 + 1e4 + 0), dtype)
    assert_close(grad[0], [1 - 0.1 / 3, -0.9 - 0.1 / 3, -0.1 / 3], dtype)


@pytest.mark.parametrize("classes", [3, 40])  # the few-class batches of the compiled backends, and rows
def test_a_minus_infinity_logit_is_a_masked_class(bk, dtype, classes):
    """exp(-inf) = 0: the class drops out; without label smoothing the loss stays finite."""
    z = np.tile(np.linspace(-1, 1, classes, dtype=dtype), (4, 1))
    z[:, 1] = -np.inf
    labels = np.array([0, 2, 2, classes - 1])
    loss, grad = bk.softmax_cross_entropy(z, labels, reduction="none")
    finite = z[:, np.arange(classes) != 1]
    want_loss, want_grad = gk.backend("numpy").softmax_cross_entropy(
        finite.astype(np.float64), np.array([0, 1, 1, classes - 2]), reduction="none")
    assert_close(loss, want_loss, dtype)
    assert_close(grad[:, np.arange(classes) != 1], want_grad, dtype)
    assert np.all(grad[:, 1] == 0)


@pytest.mark.parametrize("classes", [3, 40])  # the few-class batches of the compiled backends, and rows
@pytest.mark.parametrize("target_kind", ["labels", "soft"])
def test_gradient_entries_below_the_normal_range_are_zero(bk, dtype, classes, target_kind):
    """Logits a little above log(tiny) below the row's max, in a mean over 8 rows, make gradient
    entries around tiny / 8 .. 7 tiny: the compiled backends give 0 for every entry that would be
    subnormal (arithmetic on subnormals is slow on some CPUs), the reference keeps them; all agree
    within the tolerances, whose + tiny covers the difference."""
    tiny = np.finfo(dtype).tiny
    rows = 8
    z = np.zeros((rows, classes), dtype)
    z[:, 1:] = (np.log(tiny) + np.linspace(0.0, 4.0, rows * (classes - 1))).reshape(rows, classes - 1)
    labels = np.zeros(rows, np.int64)
    targets = labels if target_kind == "labels" else np.eye(classes, dtype=dtype)[labels]
    _, grad = bk.softmax_cross_entropy(z, targets)
    _, want = gk.backend("numpy").softmax_cross_entropy(z.astype(np.float64), targets.astype(np.float64)
                                                         if target_kind == "soft" else targets)
    assert np.any((want != 0) & (np.abs(want) < tiny)), "the reference has entries below tiny to flush"
    assert_close(grad, want, dtype)
    if bk.name != "numpy":
        assert not np.any((grad != 0) & (np.abs(grad) < tiny)), grad[(grad != 0) & (np.abs(grad) < tiny)]


def test_nan_logits_poison_only_their_row(bk, dtype):
    z = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], dtype)
    loss, grad = bk.softmax_cross_entropy(z, np.array([0, 1]), reduction="none")
    assert np.isnan(loss[0]) and np.all(np.isnan(grad[0]))
    assert np.isfinite(loss[1]) and np.all(np.isfinite(grad[1]))


@pytest.mark.parametrize("kind", LAYOUTS)
def test_cross_entropy_layouts(bk, dtype, rng, kind):
    z, labels, weight, q = _problem(rng, dtype)
    for targets in (labels, q):
        loss, grad = bk.softmax_cross_entropy(z, targets, weight=weight)
        got_loss, got_grad = bk.softmax_cross_entropy(layout(z, kind), layout(targets, kind), weight=layout(weight, kind))
        assert got_loss == loss
        np.testing.assert_array_equal(got_grad, grad)


def test_gradient_in_place_into_the_logits(bk, dtype, rng):
    z, labels, weight, q = _problem(rng, dtype)
    for targets in (labels, q):
        logits = z.copy()
        loss, grad = bk.softmax_cross_entropy(z, targets, weight=weight, label_smoothing=0.1)
        got_loss, got_grad = bk.softmax_cross_entropy(logits, targets, weight=weight, label_smoothing=0.1, out=logits)
        assert got_grad is logits and got_loss == loss
        np.testing.assert_array_equal(logits, grad)


def test_gradient_into_a_strided_out(bk, dtype, rng):
    z, labels, _, _ = _problem(rng, dtype)
    out = np.empty((z.shape[0], 2 * z.shape[1]), dtype)[:, ::2]
    _, grad = bk.softmax_cross_entropy(z, labels, out=out)
    assert grad is out
    np.testing.assert_array_equal(out, bk.softmax_cross_entropy(z, labels)[1])


# ---------------------------------------------------------------------------------------------
# sigmoid + binary cross-entropy, MSE


def _bce_expected(z, t, reduction):
    loss, grad = oracle.bce_with_logits(z, t)
    return oracle.reduce_elementwise(loss, grad, reduction)


def _mse_expected(y, t, reduction):
    d = oracle.f64(y) - oracle.f64(t)
    return oracle.reduce_elementwise(d * d, 2 * d, reduction)


ELEMENTWISE_LOSSES = {
    "sigmoid_binary_cross_entropy": (lambda r, shape: r.uniform(0, 1, shape), _bce_expected),
    "mse": (lambda r, shape: r.standard_normal(shape), _mse_expected),
}


@pytest.mark.parametrize("name", ELEMENTWISE_LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (1,), (9,), (4, 6), (2, 3, 4), (0,), (3, 0)], ids=str)
def test_elementwise_losses_match_closed_form(bk, dtype, rng, name, reduction, shape):
    make_target, expected = ELEMENTWISE_LOSSES[name]
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    t = make_target(rng, shape).astype(dtype)
    with unchanged(z, t):
        loss, grad = getattr(bk, name)(z, t, reduction=reduction)
    want_loss, want_grad = expected(z, t, reduction)
    _check_scalar_loss(loss, dtype, reduction)
    assert grad.shape == shape and grad.dtype == dtype
    if reduction == "none":
        assert loss.shape == shape and loss.dtype == dtype
    if reduction == "mean" and z.size == 0:
        assert np.isnan(loss)
    else:
        assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype)


@pytest.mark.parametrize("name", ELEMENTWISE_LOSSES)
def test_elementwise_losses_against_finite_differences(bk, rng, name):
    make_target, _ = ELEMENTWISE_LOSSES[name]
    z, t = 2 * rng.standard_normal((3, 4)), make_target(rng, (3, 4))
    fn = getattr(bk, name)
    for reduction in REDUCTIONS:
        gk.gradcheck(lambda a, r=reduction: fn(a, t, reduction=r)[0],
                     lambda g, a, r=reduction: g * fn(a, t, reduction=r)[1], z)


def test_bce_is_stable_for_extreme_logits(bk, dtype):
    z = np.array([1e4, -1e4, 1e4, -1e4, 80.0, -80.0], dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0], dtype)
    with np.errstate(all="raise"):
        loss, grad = bk.sigmoid_binary_cross_entropy(z, t, reduction="none")
    assert_close(loss, [0, 0, 1e4, 1e4, math.log1p(math.exp(-80)), math.log1p(math.exp(-80))], dtype)
    assert_close(grad, [0, 0, 1, -1, -math.exp(-80), math.exp(-80)], dtype, scale=1.0)


def test_bce_is_accurate_when_the_loss_is_tiny(bk, dtype):
    # log1p(e), not log(1 + e): for a confident, correct prediction the loss is far below 1 and
    # must keep its relative accuracy (log(1 + e) would return 0 at z = 40 in float64).
    z = np.array([20.0, -20.0, 40.0], dtype)
    t = np.array([1.0, 0.0, 1.0], dtype)
    loss, _ = bk.sigmoid_binary_cross_entropy(z, t, reduction="none")
    expected = np.array([math.log1p(math.exp(-20)), math.log1p(math.exp(-20)), math.log1p(math.exp(-40))])
    assert np.all(loss > 0)
    assert_close(loss, expected, dtype, scale=0.0)


def test_bce_nan_propagates(bk, dtype):
    loss, grad = bk.sigmoid_binary_cross_entropy(np.array([np.nan, 0.0], dtype), np.array([1.0, 0.5], dtype), reduction="none")
    assert np.isnan(loss[0]) and np.isnan(grad[0]) and np.isfinite(loss[1])


@pytest.mark.parametrize("name", ELEMENTWISE_LOSSES)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_elementwise_loss_layouts_and_in_place(bk, dtype, rng, name, kind):
    make_target, _ = ELEMENTWISE_LOSSES[name]
    z, t = (2 * rng.standard_normal((5, 6))).astype(dtype), make_target(rng, (5, 6)).astype(dtype)
    fn = getattr(bk, name)
    loss, grad = fn(z, t, reduction="none")
    got_loss, got_grad = fn(layout(z, kind), layout(t, "C" if kind == "F" else "F"), reduction="none")
    np.testing.assert_array_equal(got_loss, loss)
    np.testing.assert_array_equal(got_grad, grad)
    sum_loss, _ = fn(z, t, reduction="sum")
    zc = z.copy()
    got_sum, got_grad = fn(zc, t, reduction="sum", out=zc)
    assert got_grad is zc and got_sum == sum_loss
    np.testing.assert_array_equal(zc, grad)


def test_mean_is_over_all_elements(bk, dtype, rng):
    y, t = rng.standard_normal((4, 5)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    mean, dmean = bk.mse(y, t)
    total, dsum = bk.mse(y, t, reduction="sum")
    assert_close(mean, total / 20, dtype)
    assert_close(dmean, dsum / 20, dtype)


def test_soft_zero_target_next_to_an_impossible_class(bk, dtype):
    """Label smoothing gives the class that z says is impossible q = eps / C > 0, so the loss is
    +Inf, as PyTorch's -sum(w q log p) says; 0 * (-Inf) of the bare zero target must not make it NaN."""
    z = np.array([[-np.inf, 0.0]], dtype)
    loss, grad = bk.softmax_cross_entropy(z, np.zeros_like(z), label_smoothing=0.1)
    assert loss == np.inf
    assert_close(grad, [[-0.05, 0.05]], dtype)


def test_out_may_be_the_soft_targets(bk, dtype, rng):
    """The kernel reads the targets after writing a row's gradient, so out=targets goes through a
    scratch buffer and gives what a fresh output does."""
    z = rng.standard_normal((3, 4)).astype(dtype)
    t = bk.softmax(rng.standard_normal((3, 4)).astype(dtype))
    loss, grad = bk.softmax_cross_entropy(z, t, label_smoothing=0.1)
    loss_in_place, written = bk.softmax_cross_entropy(z, t, label_smoothing=0.1, out=t)
    assert written is t and loss_in_place == loss
    np.testing.assert_array_equal(t, grad)


def test_a_mean_of_terms_near_the_largest_float32_is_finite(bk):
    """Each term is below float32's largest value and so is their mean: a partial sum in float32
    (4 or 64 terms, as the C and Numba kernels add them for speed) would overflow to Inf."""
    zeros = np.zeros(70, np.float32)
    loss, _ = bk.sigmoid_binary_cross_entropy(np.full(70, 3.0e38, np.float32), zeros)
    assert_close(loss, 3.0e38, np.float32)
    loss, _ = bk.mse(np.full(70, 1.5e19, np.float32), zeros)
    assert_close(loss, np.float64(np.float32(1.5e19)) ** 2, np.float32)


def _split_mean(call, parts, denominator):
    """Each part's loss and gradient with the whole batch's denominator: (sum of the losses, the
    gradients concatenated)."""
    results = [call(*part, denominator=denominator) for part in parts]
    return sum(float(loss) for loss, _ in results), np.concatenate([grad for _, grad in results])


def test_a_mean_split_across_calls_with_the_whole_denominator(bk, dtype, rng):
    """denominator= makes each call one part of a mean over a batch split across calls (as
    gradkernels.dask does per chunk): the parts' losses add up to the whole call's, and their
    gradients are the whole call's rows."""
    z = rng.standard_normal((10, 4)).astype(dtype)
    labels = np.array([0, 3, -100, 1, 2, -100, -100, 0, 1, 2])
    weight = rng.random(4).astype(dtype)
    splits = [slice(0, 3), slice(3, 3), slice(3, 10)]  # an empty part too

    options = dict(weight=weight, label_smoothing=0.1)
    whole_loss, whole_grad = bk.softmax_cross_entropy(z, labels, **options)
    counted = labels != -100
    loss, grad = _split_mean(lambda zi, ti, **kw: bk.softmax_cross_entropy(zi, ti, **options, **kw),
                             [(z[s], labels[s]) for s in splits], float(weight[labels[counted]].sum()))
    assert_close(loss, whole_loss, dtype)
    assert_close(grad, whole_grad, dtype)

    soft = bk.softmax(z)
    whole_loss, whole_grad = bk.softmax_cross_entropy(z, soft)
    loss, grad = _split_mean(bk.softmax_cross_entropy, [(z[s], soft[s]) for s in splits], len(z))
    assert_close(loss, whole_loss, dtype)
    assert_close(grad, whole_grad, dtype)

    t = rng.random((10, 4)).astype(dtype)
    for op in (bk.sigmoid_binary_cross_entropy, bk.mse):
        whole_loss, whole_grad = op(z, t)
        loss, grad = _split_mean(op, [(z[s], t[s]) for s in splits], z.size)
        assert_close(loss, whole_loss, dtype)
        assert_close(grad, whole_grad, dtype)


def test_denominator_checks(bk):
    z, t = np.zeros((2, 3)), np.array([0, 1])
    with pytest.raises(ValueError, match="denominator is for reduction='mean', not 'sum'"):
        bk.softmax_cross_entropy(z, t, reduction="sum", denominator=4)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="denominator must be finite and >= 0"):
            bk.mse(z, z, denominator=bad)
    with pytest.raises(TypeError, match="denominator must be a real number, got str"):
        bk.sigmoid_binary_cross_entropy(z, z, denominator="4")
    loss, grad = bk.softmax_cross_entropy(z, t, denominator=0)  # as for a mean over nothing
    assert math.isnan(loss) and not grad.any()


# ---------------------------------------------------------------------------------------------
# with_grad=False: the loss alone


def _loss_cases(rng, dtype):
    """(name, args, kwargs) of the fused losses over the paths their kernels take: few classes
    (rows as lanes) and many, labels and probabilities, weights and smoothing, every reduction, NaN,
    a masked class, extreme logits, no rows; elementwise over layouts and their chunks."""
    for classes in (5, 40):
        z, labels, weight, q = _problem(rng, dtype, rows=70, classes=classes, lead=(2,))
        z[0, 3, 1], z[1, 4, :] = np.nan, 1e4
        z[1, 5, 2] = -np.inf
        for targets, reduction, smoothing, w in itertools.product((labels, q), REDUCTIONS, (0.0, 0.1), (None, weight)):
            yield ("softmax_cross_entropy", (z, targets),
                   dict(reduction=reduction, label_smoothing=smoothing, weight=w))
    yield "softmax_cross_entropy", (np.zeros((0, 3), dtype), np.zeros(0, np.int64)), dict(reduction="sum")
    n = 2 * 16384 + 5  # more than one of the elementwise kernels' 16,384-element chunks
    z = (3 * rng.standard_normal(n)).astype(dtype)
    z[7] = np.nan
    t = rng.uniform(0, 1, n).astype(dtype)
    z2, t2 = z[:-5].reshape(64, -1), t[:-5].reshape(64, -1)
    for name, reduction in itertools.product(ELEMENTWISE_LOSSES, REDUCTIONS):
        yield name, (z, t), dict(reduction=reduction)
        for kind in LAYOUTS:
            yield name, (layout(z2, kind), layout(t2, kind)), dict(reduction=reduction)


def test_with_grad_false_gives_the_same_loss_and_no_gradient(bk, dtype, rng):
    for name, args, kwargs in _loss_cases(rng, dtype):
        fn = getattr(bk, name)
        with unchanged(*args):
            loss, grad = fn(*args, **kwargs, with_grad=False)
        assert grad is None
        want, _ = fn(*args, **kwargs)
        _check_scalar_loss(loss, dtype, kwargs["reduction"])
        assert np.shape(loss) == np.shape(want), (name, kwargs)
        assert_close(loss, want, dtype)


def test_with_grad_false_takes_no_out_and_only_a_bool(bk, dtype):
    z, t = np.zeros((2, 3), dtype), np.zeros((2, 3), dtype)
    calls = [("softmax_cross_entropy", (z, np.zeros(2, np.int64))), ("sigmoid_binary_cross_entropy", (z, t)),
             ("mse", (z, t))]
    for name, args in calls:
        with pytest.raises(ValueError, match="with_grad=False computes none"):
            getattr(bk, name)(*args, with_grad=False, out=np.empty_like(z))
        with pytest.raises(TypeError, match="with_grad must be a bool, got int"):
            getattr(bk, name)(*args, with_grad=0)
