"""gradkernels.torch: our kernels as PyTorch operators, where torch is installed (`pip install
torch==2.13.0`, the CPU build): registration (torch.library.opcheck), gradients (gradcheck in
float64), agreement with torch.nn.functional, torch.compile, saved tensors, inputs, errors."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
gkt = pytest.importorskip("gradkernels.torch")

import gradkernels as gk  # noqa: E402

BACKENDS = [name for name, entry in gk.backends().items() if entry["available"]]
DTYPES = [torch.float32, torch.float64]
# Ours against PyTorch's in the same precision: each may round differently (another summation
# order or BLAS blocking, another exp). The largest values compared are sums of at most ~10 terms
# of size ~3 (GEMMs of 5-7 rows or columns, losses over 9 rows), whose rounding in either can reach
# ~10 eps * 30 in absolute terms, even where the result cancels to near zero: so atol covers
# 300 eps (3.6e-5 in float32, 6.7e-14 in float64) and rtol some 400 eps of the result itself.
TOLERANCE = {torch.float32: dict(rtol=5e-5, atol=4e-5), torch.float64: dict(rtol=1e-13, atol=1e-13)}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def _close(got, want, dtype):
    torch.testing.assert_close(got, want, **TOLERANCE[dtype])


def _layouts(t: torch.Tensor):
    """t as PyTorch's recommended samples have it: contiguous, transposed, sliced."""
    yield "contiguous", t
    if t.dim() >= 2:
        yield "transposed", t.t().contiguous().t()
        wide = torch.cat([t, t], dim=-1)
        yield "sliced", wide[..., ::2]


# ---------------------------------------------------------------------------------------------
# Registration: opcheck over empty, transposed, sliced, float32/64, with and without grad. It checks
# the registration, the same whichever backend runs: here the one in force ("").


def _activation_samples(dtype, gen):
    x = torch.randn(5, 7, generator=gen, dtype=dtype)
    for _, t in _layouts(x):
        for requires_grad in (False, True):
            yield t.detach().requires_grad_(requires_grad)
    yield torch.empty(0, 7, dtype=dtype)


ACTIVATIONS = {"relu": (), "leaky_relu": (0.2,), "sigmoid": (), "tanh": (), "softmax": (), "log_softmax": ()}


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck_activations(name, dtype, gen):
    op = getattr(torch.ops.gradkernels, name).default
    backward = getattr(torch.ops.gradkernels, f"{name}_backward").default
    for x in _activation_samples(dtype, gen):
        torch.library.opcheck(op, (x, *ACTIVATIONS[name], ""))
        saved = x.detach().clone().uniform_(0.1, 0.9, generator=gen)
        torch.library.opcheck(backward, (torch.ones_like(saved), saved, *ACTIVATIONS[name], ""))


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck_losses(dtype, gen):
    ops = torch.ops.gradkernels
    for reduction in ("mean", "sum", "none"):
        for _, z in _layouts(torch.randn(6, 5, generator=gen, dtype=dtype)):
            for requires_grad in (False, True):  # the gradient computed where one is required, as the functions ask
                z = z.detach().requires_grad_(requires_grad)
                labels = torch.randint(0, 5, (6,), generator=gen)
                q = torch.softmax(torch.randn(6, 5, generator=gen, dtype=dtype), -1)
                weight = torch.rand(5, generator=gen, dtype=dtype) + 0.5
                torch.library.opcheck(ops.cross_entropy.default,
                                      (z, labels, None, -100, reduction, 0.0, requires_grad, ""))
                torch.library.opcheck(ops.cross_entropy.default, (z, q, weight, -100, reduction, 0.1, requires_grad, ""))
                t = torch.rand(6, 5, generator=gen, dtype=dtype)
                torch.library.opcheck(ops.binary_cross_entropy_with_logits.default, (z, t, reduction, requires_grad, ""))
                torch.library.opcheck(ops.mse_loss.default, (z, t, reduction, requires_grad, ""))
        if reduction != "mean":  # a mean over nothing is NaN, which opcheck's comparison does not equate
            empty = torch.empty(0, 5, dtype=dtype)
            torch.library.opcheck(ops.mse_loss.default, (empty, empty, reduction, True, ""))
            torch.library.opcheck(ops.cross_entropy.default,
                                  (empty, torch.empty(0, dtype=torch.int64), None, -100, reduction, 0.0, True, ""))


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck_linear_layers(dtype, gen):
    ops = torch.ops.gradkernels
    w = torch.randn(4, 6, generator=gen, dtype=dtype)
    b = torch.randn(4, generator=gen, dtype=dtype)
    labels = torch.randint(0, 4, (5,), generator=gen)
    for (_, x), bias, requires_grad in itertools.product(_layouts(torch.randn(5, 6, generator=gen, dtype=dtype)),
                                                         (b, None), (False, True)):
        x, w_, bias = (t if t is None else t.detach().requires_grad_(requires_grad) for t in (x, w, bias))
        torch.library.opcheck(ops.linear.default, (x, w_, bias, ""))
        torch.library.opcheck(ops.linear_relu.default, (x, w_, bias, ""))
        torch.library.opcheck(ops.linear_cross_entropy.default,
                              (x, w_, bias, labels, None, -100, "mean", 0.0, 2, requires_grad, ""))
    x3 = torch.randn(2, 3, 6, generator=gen, dtype=dtype, requires_grad=True)
    torch.library.opcheck(ops.linear.default, (x3, w, b, ""))
    x, dy = torch.randn(5, 6, generator=gen, dtype=dtype), torch.randn(5, 4, generator=gen, dtype=dtype)
    # every weight layout with every gradient, and each gradient left out on a contiguous weight
    cases = [(w_, True, True) for _, w_ in _layouts(w)] + [(w, False, True), (w, True, False), (w, False, False)]
    for w_, with_bias, with_dx in cases:
        torch.library.opcheck(ops.linear_backward.default, (dy, x, w_, with_bias, with_dx, ""))
        torch.library.opcheck(ops.linear_relu_backward.default, (dy, dy.relu(), x, w_, with_bias, with_dx, ""))
    for _, g in _layouts(dy):
        torch.library.opcheck(ops.scale.default, (g, torch.tensor(0.5, dtype=dtype)))
        torch.library.opcheck(ops.scale.default, (g, torch.rand(5, 1, generator=gen, dtype=dtype)))


# ---------------------------------------------------------------------------------------------
# Gradients: gradcheck in float64


def _double(gen, *shape, requires_grad=True):
    return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=requires_grad)


def test_gradcheck(gen, backend):
    x = _double(gen, 4, 5)
    # away from ReLU's kink, where finite differences are not the derivative
    off_the_kink = (x.detach() + 0.3 * torch.sign(x.detach())).requires_grad_()
    for name, args in [("relu", ()), ("leaky_relu", (0.2,))]:
        fn = getattr(gkt, name)
        assert torch.autograd.gradcheck(lambda t: fn(t, *args, backend=backend), (off_the_kink,))
    for name in ("sigmoid", "tanh", "softmax", "log_softmax"):
        fn = getattr(gkt, name)
        assert torch.autograd.gradcheck(lambda t: fn(t, backend=backend), (x,))
    labels = torch.randint(0, 5, (4,), generator=gen)
    labels[1] = -100
    q = torch.softmax(torch.randn(4, 5, generator=gen, dtype=torch.float64), -1)
    weight = torch.rand(5, generator=gen, dtype=torch.float64) + 0.5
    for reduction, target in itertools.product(("mean", "sum", "none"), (labels, q)):
        assert torch.autograd.gradcheck(
            lambda t: gkt.cross_entropy(t, target, weight=weight, reduction=reduction, label_smoothing=0.1,
                                        backend=backend), (x,))
        # in the probability targets alone, and in both
        for inputs in ((x.detach(), q.detach().requires_grad_()), (x, q.detach().requires_grad_())):
            assert torch.autograd.gradcheck(
                lambda t, y: gkt.cross_entropy(t, y, weight=weight, reduction=reduction, label_smoothing=0.1,
                                               backend=backend), inputs)
        t = torch.rand(4, 5, generator=gen, dtype=torch.float64)
        assert torch.autograd.gradcheck(
            lambda z: gkt.binary_cross_entropy_with_logits(z, t, reduction=reduction, backend=backend), (x,))
        assert torch.autograd.gradcheck(
            lambda p, y: gkt.mse_loss(p, y, reduction=reduction, backend=backend), (x, _double(gen, 4, 5)))
    w, b = _double(gen, 3, 5), _double(gen, 3)
    for fn in (gkt.linear, gkt.linear_relu):
        assert torch.autograd.gradcheck(lambda *a: fn(*a, backend=backend), (x, w, b))
        assert torch.autograd.gradcheck(lambda *a: fn(*a, backend=backend), (x, w))
    three = torch.randint(0, 3, (4,), generator=gen)
    for reduction, chunk in itertools.product(("mean", "sum"), (None, 3)):
        assert torch.autograd.gradcheck(
            lambda *a: gkt.linear_cross_entropy(*a, three, reduction=reduction, chunk_size=chunk, backend=backend),
            (x, w, b))


# ---------------------------------------------------------------------------------------------
# Against torch.nn.functional, float32 and float64


def _forward_and_grads(fn, *inputs):
    leaves = [t.detach().clone().requires_grad_(t.dtype.is_floating_point) for t in inputs]
    out = fn(*leaves)
    upstream = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    out.backward(upstream)
    return out.detach(), [t.grad for t in leaves if t.grad is not None]


def _agree(ours, theirs, inputs, dtype):
    got, got_grads = _forward_and_grads(ours, *inputs)
    want, want_grads = _forward_and_grads(theirs, *inputs)
    _close(got, want, dtype)
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        _close(g, w, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_equal_torch(dtype, gen, backend):
    pairs = {
        "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "softmax": lambda t: torch.softmax(t, -1), "log_softmax": lambda t: torch.log_softmax(t, -1),
    }
    for _, x in _layouts(3 * torch.randn(6, 9, generator=gen, dtype=dtype)):
        for name, theirs in pairs.items():
            _agree(lambda t: getattr(gkt, name)(t, backend=backend), theirs, (x,), dtype)
        _agree(lambda t: gkt.leaky_relu(t, 0.1, backend=backend), lambda t: F.leaky_relu(t, 0.1), (x,), dtype)
    x3 = torch.randn(2, 3, 4, generator=gen, dtype=dtype)
    _agree(lambda t: gkt.softmax(t, dim=2, backend=backend), lambda t: torch.softmax(t, 2), (x3,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_equals_torch(dtype, gen, backend):
    z = 3 * torch.randn(9, 6, generator=gen, dtype=dtype)
    labels = torch.randint(0, 6, (9,), generator=gen)
    labels[[1, 4]] = -100
    q = torch.softmax(torch.randn(9, 6, generator=gen, dtype=dtype), -1)
    weight = torch.rand(6, generator=gen, dtype=dtype) + 0.2
    for reduction, target, w, eps, ignore in itertools.product(
            ("mean", "sum", "none"), (labels, q), (None, weight), (0.0, 0.25), (-100, 2)):
        if target is q and ignore != -100:  # PyTorch, and we, refuse it for class probabilities
            continue
        if target is labels:
            target = torch.where(labels == -100, ignore, labels)
        # probability targets require a gradient too (integer ones cannot)
        _agree(lambda t, y: gkt.cross_entropy(t, y, weight=w, reduction=reduction, label_smoothing=eps,
                                              ignore_index=ignore, backend=backend),
               lambda t, y: F.cross_entropy(t, y, weight=w, reduction=reduction, label_smoothing=eps,
                                            ignore_index=ignore), (z, target), dtype)
    # leading dimensions: ours (N, L, C), theirs (N, C, L)
    z3, labels3 = torch.randn(2, 3, 6, generator=gen, dtype=dtype), torch.randint(0, 6, (2, 3), generator=gen)
    _agree(lambda t: gkt.cross_entropy(t, labels3, reduction="none", backend=backend),
           lambda t: F.cross_entropy(t.movedim(-1, 1), labels3, reduction="none"), (z3,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_losses_equal_torch(dtype, gen, backend):
    z = 4 * torch.randn(5, 8, generator=gen, dtype=dtype)
    t = torch.rand(5, 8, generator=gen, dtype=dtype)
    for reduction in ("mean", "sum", "none"):
        _agree(lambda a: gkt.binary_cross_entropy_with_logits(a, t, reduction=reduction, backend=backend),
               lambda a: F.binary_cross_entropy_with_logits(a, t, reduction=reduction), (z,), dtype)
        # the squared error is differentiable in its target too
        _agree(lambda a, b: gkt.mse_loss(a, b, reduction=reduction, backend=backend),
               lambda a, b: F.mse_loss(a, b, reduction=reduction), (z, t), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_layers_equal_torch(dtype, gen, backend):
    w, b = torch.randn(7, 6, generator=gen, dtype=dtype), torch.randn(7, generator=gen, dtype=dtype)
    for _, x in _layouts(torch.randn(5, 6, generator=gen, dtype=dtype)):
        _agree(lambda *a: gkt.linear(*a, backend=backend), F.linear, (x, w, b), dtype)
        _agree(lambda *a: gkt.linear(*a, backend=backend), F.linear, (x, w), dtype)
        _agree(lambda *a: gkt.linear_relu(*a, backend=backend), lambda *a: F.relu(F.linear(*a)), (x, w, b), dtype)
    x3 = torch.randn(2, 3, 6, generator=gen, dtype=dtype)
    _agree(lambda *a: gkt.linear(*a, backend=backend), F.linear, (x3, w, b), dtype)
    labels = torch.randint(0, 7, (5,), generator=gen)
    labels[2] = -100
    cw = torch.rand(7, generator=gen, dtype=dtype) + 0.5
    for reduction, chunk, class_weight in itertools.product(("mean", "sum"), (None, 2), (None, cw)):
        _agree(lambda *a: gkt.linear_cross_entropy(*a, labels, class_weight=class_weight, reduction=reduction,
                                                   label_smoothing=0.1, chunk_size=chunk, backend=backend),
               lambda *a: F.cross_entropy(F.linear(*a), labels, weight=class_weight, reduction=reduction,
                                          label_smoothing=0.1), (x, w, b), dtype)


def test_fused_losses_compute_a_gradient_only_where_autograd_will_use_it(gen, monkeypatch):
    asked = []
    for name in ("softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mse", "linear_cross_entropy"):
        monkeypatch.setattr(gk, name, lambda *a, _op=getattr(gk, name), **kw: asked.append(kw["with_grad"]) or _op(*a, **kw))
    z, t = torch.randn(6, 5, generator=gen), torch.rand(6, 5, generator=gen)
    labels, weight = torch.randint(0, 5, (6,), generator=gen), torch.randn(5, 5, generator=gen)
    calls = [  # (ours, theirs, the second argument, whether it may require a gradient)
        (lambda a, _: gkt.cross_entropy(a, labels), lambda a, _: F.cross_entropy(a, labels), t, False),
        (gkt.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, t, False),
        (gkt.mse_loss, F.mse_loss, t, True),
        (lambda x, w: gkt.linear_cross_entropy(x, w, None, labels),
         lambda x, w: F.cross_entropy(F.linear(x, w), labels), weight, True),
    ]
    for (ours, theirs, second, differentiable), *grads, grad_mode in itertools.product(calls, *[(False, True)] * 3):
        if grads[1] and not differentiable:
            continue
        a, b = (u.detach().requires_grad_(g) for u, g in zip((z, second), grads))
        with torch.set_grad_enabled(grad_mode):
            loss = ours(a, b)
        needed = grad_mode and any(grads)
        assert asked.pop() is needed and loss.requires_grad is needed
        torch.testing.assert_close(loss, theirs(a, b), **TOLERANCE[torch.float32])


def test_a_layer_hands_autograd_its_weight_gradient_as_is_and_no_unwanted_input_gradient(gen, monkeypatch):
    calls = []
    backward = gk.linear_backward
    monkeypatch.setattr(gk, "linear_backward", lambda *a, **kw: calls.append(kw["with_dx"]) or backward(*a, **kw))
    x, dy = torch.randn(5, 6, generator=gen), torch.randn(5, 4, generator=gen)
    for x_needs_grad in (False, True):
        w = torch.randn(4, 6, generator=gen, requires_grad=True)
        x_ = x.detach().requires_grad_(x_needs_grad)
        handed = []
        # where the gradient lies as the backward returns it (a reference kept here would make
        # autograd copy it: it takes a gradient as .grad only when nothing else holds it)
        w.register_hook(lambda grad: handed.append(grad.data_ptr()))
        gkt.linear(x_, w).backward(dy)
        assert calls.pop() is x_needs_grad and (x_.grad is not None) is x_needs_grad
        assert w.grad.data_ptr() == handed[0]  # taken as .grad, not copied to w's layout
        torch.testing.assert_close(w.grad, dy.T @ x, **TOLERANCE[torch.float32])


def test_the_backend_in_force_runs_unless_one_is_named(gen, monkeypatch):
    import gradkernels

    calls = []
    named = gradkernels.backend("numpy")
    for owner, label in ((gradkernels, "in force"), (named, "named")):
        real = owner.sigmoid
        monkeypatch.setattr(owner, "sigmoid",
                            lambda *a, real=real, label=label, **k: calls.append(label) or real(*a, **k))
    x = torch.randn(3, 4, generator=gen)
    gkt.sigmoid(x)
    gkt.sigmoid(x, backend="numpy")
    compiled = torch.compile(lambda t: gkt.sigmoid(t), backend="aot_eager", fullgraph=True)
    compiled(x)
    assert calls == ["in force", "named", "in force"]
    with pytest.raises(ValueError, match="backend"):
        gkt.sigmoid(x, backend="cuda")


def test_activations_and_losses_run_at_the_pytorch_scale_and_linear_layers_at_the_process_s_scale(gen, monkeypatch):
    """PyTorch's kernels run around the activations and losses (gradkernels._threads.
    BESIDE_PYTORCH_SCALE); the linear layers' own GEMMs are OpenBLAS's, as when our API is called
    directly: those keep the process's factor, also once a kernel called through PyTorch raised."""
    from gradkernels import _threads

    monkeypatch.setattr(_threads, "process_parallel_scale", 64)
    seen = []
    for name in ("relu", "relu_backward", "log_softmax", "log_softmax_backward", "softmax_cross_entropy", "mse",
                 "linear", "linear_backward"):
        real = getattr(gk, name)
        monkeypatch.setattr(gk, name, lambda *a, _real=real, _name=name, **k: seen.append(
            (_name, _threads.parallel_scale())) or _real(*a, **k))
    x = torch.randn(6, 5, generator=gen, requires_grad=True)
    labels = torch.randint(0, 5, (6,), generator=gen)
    gkt.relu(x).sum().backward()
    gkt.log_softmax(x).sum().backward()
    gkt.cross_entropy(x, labels).backward()
    gkt.mse_loss(x, torch.zeros(6, 5)).backward()
    gkt.linear(x, torch.randn(4, 5, generator=gen)).sum().backward()
    gk.relu(x.detach().numpy())
    with pytest.raises(ValueError, match="label"):
        gkt.cross_entropy(x, torch.full((6,), 9))
    beside = _threads.BESIDE_PYTORCH_SCALE
    assert seen == [("relu", beside), ("relu_backward", beside), ("log_softmax", beside),
                    ("log_softmax_backward", beside), ("softmax_cross_entropy", beside), ("mse", beside),
                    ("linear", 64), ("linear_backward", 64), ("relu", 64), ("softmax_cross_entropy", beside)]
    assert _threads.parallel_scale() == 64


# ---------------------------------------------------------------------------------------------
# torch.compile, saved tensors, inputs, second derivatives, errors


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.w1 = torch.nn.Parameter(torch.randn(16, 8, generator=gen) * 0.3)
        self.b1 = torch.nn.Parameter(torch.zeros(16))
        self.w2 = torch.nn.Parameter(torch.randn(4, 16, generator=gen) * 0.3)

    def forward(self, x, labels):
        h = gkt.tanh(gkt.linear_relu(x, self.w1, self.b1))
        return gkt.cross_entropy(gkt.linear(h, self.w2), labels, label_smoothing=0.1) + gkt.mse_loss(
            gkt.sigmoid(h), torch.full_like(h, 0.5))


def _loss_and_grads(model, x, labels):
    model.zero_grad()
    loss = model(x, labels)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_model_equals_eager(compiler, gen):
    torch._dynamo.reset()
    model = _Model()
    x, labels = torch.randn(12, 8, generator=gen), torch.randint(0, 4, (12,), generator=gen)
    want, want_grads = _loss_and_grads(model, x, labels)
    compiled = torch.compile(model, backend=compiler, fullgraph=True)
    got, got_grads = _loss_and_grads(compiled, x, labels)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w)


def test_backward_twice_leaves_the_saved_tensors_intact(gen, backend):
    z = torch.randn(6, 5, generator=gen, requires_grad=True)
    labels = torch.randint(0, 5, (6,), generator=gen)
    p = gkt.softmax(z, backend=backend)
    logits = p * 3
    loss = gkt.cross_entropy(logits, labels, backend=backend)
    saved_p, saved_logits = p.detach().clone(), logits.detach().clone()
    loss.backward(retain_graph=True)
    first = z.grad.clone()
    loss.backward()
    torch.testing.assert_close(z.grad, 2 * first)
    assert torch.equal(p.detach(), saved_p) and torch.equal(logits.detach(), saved_logits)
    want = z.detach().clone().requires_grad_()
    F.cross_entropy(torch.softmax(want, -1) * 3, labels).backward()
    torch.testing.assert_close(first, want.grad)


def test_a_loss_hands_autograd_its_kept_gradient_where_the_upstream_one_is_one(gen, monkeypatch):
    """loss.backward() takes the gradient the forward kept, not a scaled copy of it; any other
    upstream gradient (a scaled loss, a "none" reduction's rows) a copy. Both equal PyTorch's, also
    accumulated over a retained graph run three times (autograd copies a kept gradient it would
    otherwise make a leaf's .grad)."""
    copies = []
    scale = gkt._scale
    monkeypatch.setattr(gkt, "_scale", lambda *a: copies.append(1) or scale(*a))
    z, t = torch.randn(6, 5, generator=gen), torch.rand(6, 5, generator=gen)
    labels, w = torch.randint(0, 5, (6,), generator=gen), torch.randn(5, 5, generator=gen)
    calls = [
        (lambda a, r: gkt.cross_entropy(a, labels, reduction=r), lambda a, r: F.cross_entropy(a, labels, reduction=r)),
        (lambda a, r: gkt.binary_cross_entropy_with_logits(a, t, reduction=r),
         lambda a, r: F.binary_cross_entropy_with_logits(a, t, reduction=r)),
        (lambda a, r: gkt.mse_loss(a, t, reduction=r), lambda a, r: F.mse_loss(a, t, reduction=r)),
        (lambda a, r: gkt.linear_cross_entropy(a, w, None, labels, reduction=r),
         lambda a, r: F.cross_entropy(F.linear(a, w), labels, reduction=r)),
    ]
    for (ours, theirs), reduction, factor in itertools.product(calls, ("mean", "sum", "none"), (1.0, 0.5)):
        if reduction == "none" and ours is calls[3][0]:
            continue
        a, b = z.clone().requires_grad_(), z.clone().requires_grad_()
        loss, want = ours(a, reduction), theirs(b, reduction)
        upstream = torch.full_like(want, factor)
        for _ in range(3):
            loss.backward(upstream, retain_graph=True)
        (want * 3).backward(upstream)
        assert len(copies) == (0 if factor == 1.0 and reduction != "none" else 3)
        copies.clear()
        _close(a.grad, b.grad, torch.float32)


def test_a_hook_that_changes_a_kept_gradient_makes_a_second_backward_raise(gen):
    z = torch.randn(6, 5, generator=gen, requires_grad=True)
    logits = z * 3
    logits.register_hook(lambda grad: grad.mul_(2))  # the kept gradient itself, as loss.backward() hands it
    loss = gkt.cross_entropy(logits, torch.randint(0, 5, (6,), generator=gen))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_inputs_are_never_modified(gen, backend):
    x = torch.randn(5, 6, generator=gen, requires_grad=True)
    w = torch.randn(4, 6, generator=gen, requires_grad=True)
    b = torch.randn(4, generator=gen, requires_grad=True)
    labels = torch.randint(0, 4, (5,), generator=gen)
    t = torch.rand(5, 4, generator=gen)
    before = [a.detach().clone() for a in (x, w, b, labels, t)]
    z = gkt.linear(x, w, b, backend=backend)
    losses = [gkt.cross_entropy(z, labels, backend=backend), gkt.cross_entropy(z, t.softmax(-1), backend=backend),
              gkt.binary_cross_entropy_with_logits(z, t, backend=backend), gkt.mse_loss(z, t, backend=backend),
              gkt.linear_cross_entropy(x, w, b, labels, backend=backend)]
    for name in ACTIVATIONS:
        losses.append(getattr(gkt, name)(z, *ACTIVATIONS[name], backend=backend).sum())
    sum(losses).backward()
    for a, saved in zip((x, w, b, labels, t), before):
        assert torch.equal(a.detach(), saved)


def test_second_derivatives_raise(gen):
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    for fn in (gkt.sigmoid, lambda t: gkt.cross_entropy(t, torch.tensor([0, 1, 2]))):
        (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=False)
        assert g.shape == x.shape
        with pytest.raises(RuntimeError, match="second derivatives are not supported"):
            torch.autograd.grad(fn(x).sum(), x, create_graph=True)


def test_bad_inputs_raise_clear_errors(gen):
    x = torch.randn(3, 4, generator=gen)
    with pytest.raises(ValueError, match="x is on meta"):
        gkt.sigmoid(torch.empty(3, 4, device="meta"))
    with pytest.raises(TypeError, match="x must be float32 or float64, got torch.float16"):
        gkt.relu(x.half())
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got ndarray"):
        gkt.tanh(x.numpy())
    with pytest.raises(ValueError, match="last dimension"):
        gkt.softmax(x, dim=0)
    with pytest.raises(ValueError, match="labels|label"):
        gkt.cross_entropy(x, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="shape"):
        gkt.cross_entropy(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="in_features"):
        gkt.linear(x, torch.randn(2, 5))
    with pytest.raises(TypeError, match="weight is torch.float64 but x is torch.float32"):
        gkt.linear(x, torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="bias has shape"):
        gkt.linear(x, torch.randn(2, 4), torch.randn(3))
    with pytest.raises(ValueError, match='"mean" or "sum"'):
        gkt.linear_cross_entropy(x, torch.randn(2, 4), None, torch.tensor([0, 1, 1]), reduction="none")
    with pytest.raises(ValueError, match="ignore_index .* not to class probabilities"):
        gkt.cross_entropy(x, torch.rand(3, 4), ignore_index=0)
    with pytest.raises(ValueError, match="reduction"):
        gkt.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"weight must be 2-D \(out_features, in_features\), got shape \(4,\)"):
        gkt.linear(x, torch.randn(4))
    with pytest.raises(TypeError, match="bias is torch.float64 but x is torch.float32"):
        gkt.linear_relu(x, torch.randn(2, 4), torch.randn(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must be 2-D \(N, D\), got shape \(1, 3, 4\)"):
        gkt.linear_cross_entropy(x[None], torch.randn(2, 4), None, torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="class_weight.detach"):
        gkt.linear_cross_entropy(x, torch.randn(2, 4), None, torch.tensor([0, 1, 1]),
                                 class_weight=torch.ones(2, requires_grad=True))
    with pytest.raises(ValueError, match="weight.detach"):
        gkt.cross_entropy(x, torch.tensor([0, 1, 2]), weight=torch.ones(4, requires_grad=True))
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits computes no gradient with respect to "
                                         "target"):
        gkt.binary_cross_entropy_with_logits(x, torch.rand(3, 4, requires_grad=True))
    with pytest.raises(TypeError, match="target must be a torch.Tensor, got list"):
        gkt.cross_entropy(x, [0, 1, 2])
