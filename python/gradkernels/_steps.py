"""Training steps as users run them: forward and backward of one hidden layer, of a
scikit-learn-sized MLP and of the seed networks, each written three ways — with our ops, in plain NumPy as a user would
write it by hand, and in PyTorch eager autograd. All three return the same gradients (the tests
check it), so `python -m gradkernels bench --layers`, the asv suite and the demo compare like
with like. Each `*_step` function binds its inputs and returns a call without arguments."""

import numpy as np

ACTIVATIONS = ("relu", "sigmoid", "tanh")
BATCHES = (32, 200, 1024, 4096)
WIDTHS = (64, 256, 1024)
# 20000 x 64 -> 256 -> 256 -> 10 trained in batches of 200: scikit-learn's MLPClassifier defaults
# (batch 200) on a mid-sized table.
MLP_WIDTHS = (64, 256, 256, 10)
MLP_BATCH = 200
# The seed networks: 3 -> 10 -> 6 -> 3, ReLU hidden layers, softmax + cross-entropy, where a
# call's fixed cost is most of a step.
SEED_WIDTHS = (3, 10, 6, 3)
SEED_BATCHES = (32, 256, 1024)


def layer_inputs(rng, dtype, batch: int, width: int):
    """(x, w, b, da) of a = activation(x w + b) with x (batch, width), w (width, width)."""
    dtype = np.dtype(dtype)
    x = rng.standard_normal((batch, width)).astype(dtype)
    w = (rng.standard_normal((width, width)) * width ** -0.5).astype(dtype)
    return x, w, rng.standard_normal(width).astype(dtype), rng.standard_normal((batch, width)).astype(dtype)


def mlp_inputs(rng, dtype, batch: int = MLP_BATCH, widths=MLP_WIDTHS):
    """(x, labels, [w1, b1, w2, b2, ...]) of an MLP with those layer widths, labels over the last."""
    dtype = np.dtype(dtype)
    x = rng.standard_normal((batch, widths[0])).astype(dtype)
    params = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        params += [(rng.standard_normal((fan_in, fan_out)) * fan_in ** -0.5).astype(dtype),
                   (0.1 * rng.standard_normal(fan_out)).astype(dtype)]
    return x, rng.integers(0, widths[-1], batch), params


# ---------------------------------------------------------------------------------------------
# With our ops (a Backend, or the module namespace that follows the backend in force)


def _hidden(ops, activation):
    """(forward(x, w, b) -> a, backward(da, a, x, w, with_dx=True) -> (dx, dw, db)) of one hidden layer."""
    if activation == "relu":
        return ops.linear_relu, ops.linear_relu_backward
    forward, backward = getattr(ops, activation), getattr(ops, f"{activation}_backward")

    def layer_in_place(x, w, b):
        z = ops.linear(x, w, b)
        return forward(z, out=z)

    return layer_in_place, lambda da, a, x, w, with_dx=True: ops.linear_backward(backward(da, a), x, w, with_dx=with_dx)


def layer_step(ops, activation, x, w, b, da):
    forward, backward = _hidden(ops, activation)

    def step():
        return backward(da, forward(x, w, b), x, w)

    return step


def mlp_step(ops, activation, x, labels, params):
    forward, backward = _hidden(ops, activation)
    w_out, b_out = params[-2:]

    def step():
        acts = [x]
        for w, b in zip(params[:-2:2], params[1:-2:2]):
            acts.append(forward(acts[-1], w, b))
        loss, da, dw, db = ops.linear_cross_entropy(acts[-1], w_out, b_out, labels)
        grads = [dw, db]
        for k in range(len(acts) - 1, 0, -1):
            da, dw, db = backward(da, acts[k], acts[k - 1], params[2 * k - 2], with_dx=k > 1)  # not the input's
            grads[:0] = [dw, db]
        return loss, grads

    return step


# ---------------------------------------------------------------------------------------------
# By hand in NumPy: the plain expressions, the bias added in place, nothing else tuned


def _numpy_activation(activation, z):
    """(a, da -> dz) of the activation of z (z may be overwritten)."""
    if activation == "relu":
        a = np.maximum(z, 0, out=z)
        return a, lambda da: da * (a > 0)
    if activation == "sigmoid":
        a = 1 / (1 + np.exp(-z))
        return a, lambda da: da * a * (1 - a)
    a = np.tanh(z, out=z)
    return a, lambda da: da * (1 - a * a)


def numpy_layer_step(activation, x, w, b, da):
    def step():
        z = x @ w
        z += b
        _, derivative = _numpy_activation(activation, z)
        dz = derivative(da)
        return dz @ w.T, x.T @ dz, dz.sum(axis=0)

    return step


def numpy_mlp_step(activation, x, labels, params):
    rows = np.arange(len(labels))

    def step():
        acts, derivatives = [x], []
        for w, b in zip(params[:-2:2], params[1:-2:2]):
            z = acts[-1] @ w
            z += b
            a, derivative = _numpy_activation(activation, z)
            acts.append(a)
            derivatives.append(derivative)
        w_out, b_out = params[-2:]
        z = acts[-1] @ w_out + b_out
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(total[:, 0]) - z[rows, labels])
        g = e / total
        g[rows, labels] -= 1
        g /= len(labels)
        grads = [acts[-1].T @ g, g.sum(axis=0)]
        da = g @ w_out.T
        for k in range(len(derivatives), 0, -1):
            dz = derivatives[k - 1](da)
            grads[:0] = [acts[k - 1].T @ dz, dz.sum(axis=0)]
            if k > 1:  # no one needs the input's gradient
                da = dz @ params[2 * k - 2].T
        return loss, grads

    return step


def gemms(x, w, da):
    """The three GEMMs of a layer step alone, in NumPy: the part that is BLAS's whoever calls it."""

    def step():
        return x @ w, da @ w.T, x.T @ da

    return step


# ---------------------------------------------------------------------------------------------
# PyTorch eager autograd: leaf tensors sharing the arrays' memory


def _torch_activation(torch, activation):
    return {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[activation]


def torch_layer_step(torch, activation, x, w, b, da):
    leaves = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    upstream = torch.from_numpy(da)
    act = _torch_activation(torch, activation)

    def step():
        for leaf in leaves:
            leaf.grad = None
        act(torch.addmm(leaves[2], leaves[0], leaves[1])).backward(upstream)
        return tuple(leaf.grad for leaf in leaves)

    return step


def torch_mlp_step(torch, activation, x, labels, params):
    inputs, target = torch.from_numpy(x), torch.from_numpy(labels)
    leaves = [torch.from_numpy(p).requires_grad_() for p in params]
    act = _torch_activation(torch, activation)

    def step():
        for leaf in leaves:
            leaf.grad = None
        h = inputs
        for w, b in zip(leaves[:-2:2], leaves[1:-2:2]):
            h = act(torch.addmm(b, h, w))
        loss = torch.nn.functional.cross_entropy(torch.addmm(leaves[-1], h, leaves[-2]), target)
        loss.backward()
        return loss.detach(), [leaf.grad for leaf in leaves]

    return step
