"""Against PyTorch's own functions, where torch is installed (`pip install torch==2.13.0`, CPU build)."""

import itertools

import numpy as np
import pytest

from helpers import assert_close

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_loss_and_grad(fn, z, *args, **kwargs):
    zt = torch.tensor(z, requires_grad=True)
    loss = fn(zt, *args, **kwargs)
    loss.sum().backward()
    return loss.detach().numpy(), zt.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_equals_torch(bk, dtype, rng, reduction):
    z = (3 * rng.standard_normal((9, 6))).astype(dtype)
    labels = rng.integers(0, 6, 9)
    labels[[1, 4]] = -100
    weight = rng.uniform(0.2, 2, 6).astype(dtype)
    q = rng.dirichlet(np.ones(6), 9).astype(dtype)
    for targets, w, eps in itertools.product((labels, q), (None, weight), (0.0, 0.25)):
        loss, grad = bk.softmax_cross_entropy(z, targets, weight=w, reduction=reduction, label_smoothing=eps)
        want_loss, want_grad = _torch_loss_and_grad(
            F.cross_entropy, z.astype(np.float64), torch.tensor(targets.astype(np.float64) if targets.dtype.kind == "f" else targets),
            weight=None if w is None else torch.tensor(w.astype(np.float64)), reduction=reduction, label_smoothing=eps,
        )
        assert_close(loss, want_loss, dtype)
        assert_close(grad, want_grad, dtype)


def test_cross_entropy_all_ignored_is_nan_like_torch(bk):
    z = np.zeros((3, 4))
    loss, grad = bk.softmax_cross_entropy(z, np.full(3, -100))
    assert np.isnan(loss) and np.isnan(F.cross_entropy(torch.tensor(z), torch.full((3,), -100)).item())
    assert np.all(grad == 0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_and_mse_equal_torch(bk, dtype, rng, reduction):
    z = (4 * rng.standard_normal((5, 7))).astype(dtype)
    t = rng.uniform(0, 1, (5, 7)).astype(dtype)
    for ours, theirs in ((bk.sigmoid_binary_cross_entropy, F.binary_cross_entropy_with_logits), (bk.mse, F.mse_loss)):
        loss, grad = ours(z, t, reduction=reduction)
        want_loss, want_grad = _torch_loss_and_grad(theirs, z.astype(np.float64), torch.tensor(t.astype(np.float64)), reduction=reduction)
        assert_close(loss, want_loss, dtype)
        assert_close(grad, want_grad, dtype)


def test_activations_equal_torch(bk, dtype, rng):
    x = (3 * rng.standard_normal((6, 8))).astype(dtype)
    x[0, :3] = [0.0, np.nan, -np.inf]
    xt = torch.tensor(x.astype(np.float64))
    for ours, theirs in ((bk.relu, torch.relu), (bk.sigmoid, torch.sigmoid), (bk.tanh, torch.tanh),
                         (lambda a: bk.leaky_relu(a, 0.2), lambda a: F.leaky_relu(a, 0.2)),
                         (bk.softmax, lambda a: torch.softmax(a, -1)), (bk.log_softmax, lambda a: torch.log_softmax(a, -1))):
        assert_close(ours(x), theirs(xt).numpy(), dtype)


def test_activation_backwards_equal_torch(bk, dtype, rng):
    x = (3 * rng.standard_normal((6, 8))).astype(dtype)
    x[0, 0] = 0.0  # the derivative at 0 is 0 in both
    g = rng.standard_normal((6, 8)).astype(dtype)
    cases = (
        (lambda: bk.relu_backward(g, bk.relu(x)), torch.relu),
        (lambda: bk.relu_backward_from_mask(g, bk.relu_with_mask(x)[1]), torch.relu),
        (lambda: bk.leaky_relu_backward(g, x, 0.2), lambda a: F.leaky_relu(a, 0.2)),
        (lambda: bk.sigmoid_backward(g, bk.sigmoid(x)), torch.sigmoid),
        (lambda: bk.tanh_backward(g, bk.tanh(x)), torch.tanh),
        (lambda: bk.softmax_backward(g, bk.softmax(x)), lambda a: torch.softmax(a, -1)),
        (lambda: bk.log_softmax_backward(g, bk.log_softmax(x)), lambda a: torch.log_softmax(a, -1)),
    )
    for ours, theirs in cases:
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        theirs(xt).backward(torch.tensor(g.astype(np.float64)))
        assert_close(ours(), xt.grad.numpy(), dtype)


def test_linear_equals_torch(bk, dtype, rng):
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((7, 5), (5, 3), (3,)))
    dy = rng.standard_normal((7, 3)).astype(dtype)
    xt, wt, bt = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w, b))
    yt = F.linear(xt, wt.T, bt)  # torch stores weights (H, D)
    yt.backward(torch.tensor(dy.astype(np.float64)))
    assert_close(bk.linear(x, w, b), yt.detach().numpy(), dtype)
    for ours, theirs in zip(bk.linear_backward(dy, x, w), (xt.grad, wt.grad, bt.grad), strict=True):
        assert_close(ours, theirs.numpy(), dtype)
