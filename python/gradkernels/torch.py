"""gradkernels' kernels as PyTorch operators on CPU tensors, with autograd and torch.compile
(`pip install "gradkernels[torch]"`).

Each function takes and returns tensors and runs on the backend in force when its kernel runs, or
on the one named by `backend=` (bound to it as `gradkernels.backend(name)` is). Each is an
operator of the "gradkernels" namespace (`torch.ops.gradkernels.*`) registered with torch.library:
its CPU implementation, a fake one, so that torch.compile(fullgraph=True) traces through it without
a graph break, and an autograd formula made of our backward operators. Tensors reach the
kernels without a copy (a CPU tensor's `.numpy()` shares its memory, as `torch.from_numpy` does
for our results); inputs are never written, and every result and gradient is a fresh tensor.

The fused losses compute their gradient with the loss, in the forward, when autograd will need it
(grad mode on and an input requiring a gradient; else the loss alone), and keep it for the
backward, which hands it over as it is where the upstream gradient is exactly 1 (loss.backward()),
else scales it into a new tensor; a graph run backward twice with retain_graph=True sees the same
kept gradient both times (one changed in place makes the second backward raise). Second
derivatives are not provided: a backward run with create_graph=True raises instead of returning
wrong ones.
"""

import numpy as np
import torch

from . import _backends, _threads
from ._dispatch import backend as _bound_backend
from ._validate import reduction as _reduction

__all__ = [
    "binary_cross_entropy_with_logits", "cross_entropy", "leaky_relu", "linear", "linear_cross_entropy",
    "linear_relu", "log_softmax", "mse_loss", "relu", "sigmoid", "softmax", "tanh",
]

_FLOATS = (torch.float32, torch.float64)


def _tensor(name: str, value, *, floating=True) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_cpu:
        raise ValueError(f"{name} is on {value.device}: gradkernels.torch takes CPU tensors only")
    if floating and value.dtype not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {value.dtype}")
    return value


def _backend(backend) -> str:
    """The operators' `backend` argument: a backend's name, or "" for the one in force when the
    kernel runs (also in a compiled graph, which records the argument)."""
    if backend is None:
        return ""
    _backends.check_name(backend)
    return backend


def _ops(backend: str):
    """The ops of the operators' `backend` argument: the module-level ones (which follow the
    backend in force, tuned under "auto") for "", else those bound to the backend named."""
    import gradkernels

    return _bound_backend(backend) if backend else gradkernels


def _beside_pytorch(impl):
    """An activation's or loss's implementation, its kernels' parallel thresholds at
    _threads.BESIDE_PYTORCH_SCALE: PyTorch's kernels run around them (not the linear layers', whose
    GEMMs are OpenBLAS's)."""
    return _threads.at_parallel_scale(_threads.BESIDE_PYTORCH_SCALE, impl)


def _array(t: torch.Tensor) -> np.ndarray:
    # force: detached in C++ where t requires a gradient, ~0.3 us less than t.detach().numpy()
    return t.numpy(force=True)


def _result(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def _no_second_derivatives(name: str) -> None:
    # create_graph=True runs the backward with grad mode on
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"gradkernels.torch.{name}: second derivatives are not supported (backward was called with "
            f"create_graph=True)"
        )


def _laid_out_like(x: torch.Tensor) -> torch.Tensor:
    """An empty tensor of x's shape laid out as our elementwise ops lay out a result: Fortran order
    for a Fortran-contiguous x, else C order (the fake results must match the real ones' strides)."""
    if x.dim() > 1 and not x.is_contiguous():
        reverse = tuple(reversed(range(x.dim())))
        if x.permute(reverse).is_contiguous():
            return x.new_empty(tuple(reversed(x.shape))).permute(reverse)
    return x.new_empty(x.shape)


def _nothing(like: torch.Tensor) -> torch.Tensor:
    """What an operator returns through the dispatcher for a gradient it was told not to compute
    (its outputs cannot be None)."""
    return like.new_empty((0,))


def _gradient(grad) -> torch.Tensor | None:
    """A kernel's gradient as a tensor, None where it was not computed: an implementation called
    directly in eager mode returns None there, since making the empty tensor the dispatcher needs
    instead cost ~6 us of a tiny loss's call."""
    return None if grad is None else _result(grad)


def _kept_gradients(ctx, gradients) -> None:
    """Marks the gradients a loss returns beside its value as outputs autograd does not
    differentiate; None is one not computed (without a bias, or no gradient of the input wanted)."""
    ctx.mark_non_differentiable(*(g for g in gradients if g is not None))


def _dispatchable(impl):
    """impl as the dispatcher calls it: each None among its outputs an empty tensor of its first
    input's dtype (that of every floating input and output), as the fakes make it."""

    def registered(*args):
        outputs = impl(*args)
        if isinstance(outputs, tuple):
            return tuple(_nothing(args[0]) if t is None else t for t in outputs)
        return outputs

    return registered


_LIBRARY = torch.library.Library("gradkernels", "DEF")


def _plain(args) -> bool:
    """Whether an operator's arguments are eager tensors (not the subclasses tracing uses). A loop:
    all() over a generator cost ~1 us a call."""
    if torch.compiler.is_compiling():
        return False
    for a in args:
        if isinstance(a, torch.Tensor) and type(a) is not torch.Tensor:
            return False
    return True


def _operator(name: str, schema: str, impl, fake, autograd=None):
    """Registers `gradkernels::name`: its CPU implementation, its fake and, given `autograd`
    (setup_context, backward), its autograd formula; returns what the public functions (or, for an
    operator without a formula, the formulas) call.

    That call takes the registered operator only where PyTorch traces (under torch.compile, or
    on fake tensors). In eager mode the dispatcher's way through a Python operator's autograd
    formula costs ~40 us a call on a tiny tensor (measured on a Zen 3), a torch.autograd.Function
    made of the same implementation and formula about half that, and calling `impl` as it is
    nothing: which it does when no input requires a gradient, and for a backward operator."""
    _LIBRARY.define(name + schema)
    _LIBRARY.impl(name, _dispatchable(impl), "CPU")
    torch.library.register_fake(f"gradkernels::{name}", fake, lib=_LIBRARY)
    op = getattr(torch.ops.gradkernels, name).default
    if autograd is None:  # a backward operator, called by the formulas: in eager mode on plain
        # tensors, traced (fake or functional tensors, which .numpy() refuses) under torch.compile
        return lambda *args: impl(*args) if _plain(args) else op(*args)
    setup_context, backward = autograd
    torch.library.register_autograd(f"gradkernels::{name}", backward, setup_context=setup_context, lib=_LIBRARY)

    def forward(ctx, *args):
        # not Function's separate setup_context, whose apply binds the arguments through
        # inspect.signature on every call (~10 us)
        output = impl(*args)
        setup_context(ctx, args, output)
        return output

    recorded = type(name, (torch.autograd.Function,), {"forward": staticmethod(forward),
                                                       "backward": staticmethod(backward)})

    def call(*args):
        if torch.compiler.is_compiling():
            return op(*args)
        requires_grad = False
        for a in args:  # _plain's test and autograd's in one loop
            if isinstance(a, torch.Tensor):
                if type(a) is not torch.Tensor:
                    return op(*args)
                requires_grad = requires_grad or a.requires_grad
        if requires_grad and torch.is_grad_enabled():
            return recorded.apply(*args)
        return impl(*args)

    return call


# ---------------------------------------------------------------------------------------------
# Activations: y = f(x) elementwise (softmax, log_softmax: along the last dimension), and their
# backwards from what the forward saves (its output, or for leaky_relu its input)


def _activation(name: str, *, saves_input=False, rowwise=False, scalar: str | None = None):
    """The forward and backward operators of one activation, the forward's autograd formula the
    backward operator; `scalar` names a float argument both take (leaky_relu's slope)."""
    extra = f", float {scalar}" if scalar else ""
    fresh = (lambda x, *rest: x.new_empty(x.shape)) if rowwise else (lambda x, *rest: _laid_out_like(x))

    @_beside_pytorch
    def forward_impl(x, *args):
        *scalars, backend = args
        return _result(getattr(_ops(backend), name)(_array(x), *scalars))

    @_beside_pytorch
    def backward_impl(grad, saved, *args):
        *scalars, backend = args
        return _result(getattr(_ops(backend), f"{name}_backward")(_array(grad), _array(saved), *scalars))

    backward = _operator(f"{name}_backward", f"(Tensor grad, Tensor saved{extra}, str backend) -> Tensor",
                         backward_impl, fresh)

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0] if saves_input else output)
        ctx.args = inputs[1:]

    def formula(ctx, grad):
        _no_second_derivatives(name)
        (saved,) = ctx.saved_tensors
        return (backward(grad, saved, *ctx.args),) + (None,) * len(ctx.args)

    return _operator(name, f"(Tensor x{extra}, str backend) -> Tensor", forward_impl, fresh, (setup_context, formula))


_relu = _activation("relu")
_leaky_relu = _activation("leaky_relu", saves_input=True, scalar="negative_slope")
_sigmoid = _activation("sigmoid")
_tanh = _activation("tanh")
_softmax = _activation("softmax", rowwise=True)
_log_softmax = _activation("log_softmax", rowwise=True)


def relu(x, *, backend=None):
    """max(x, 0) elementwise; NaN stays NaN."""
    return _relu(_tensor("x", x), _backend(backend))


def leaky_relu(x, negative_slope=0.01, *, backend=None):
    """x where x > 0, else negative_slope * x."""
    return _leaky_relu(_tensor("x", x), float(negative_slope), _backend(backend))


def sigmoid(x, *, backend=None):
    return _sigmoid(_tensor("x", x), _backend(backend))


def tanh(x, *, backend=None):
    return _tanh(_tensor("x", x), _backend(backend))


def _last_dim(name: str, x: torch.Tensor, dim: int) -> None:
    if x.dim() == 0 or dim not in (-1, x.dim() - 1):
        raise ValueError(
            f"gradkernels.torch.{name} works along the last dimension (dim=-1); got dim={dim} for a "
            f"{x.dim()}-d tensor: move that dimension last first (x.movedim({dim}, -1))"
        )


def softmax(x, dim=-1, *, backend=None):
    """softmax along the last dimension (dim must name it)."""
    _last_dim("softmax", _tensor("x", x), dim)
    return _softmax(x, _backend(backend))


def log_softmax(x, dim=-1, *, backend=None):
    """log-softmax along the last dimension (dim must name it)."""
    _last_dim("log_softmax", _tensor("x", x), dim)
    return _log_softmax(x, _backend(backend))


# ---------------------------------------------------------------------------------------------
# Fused losses: one operator returns the loss and the gradient it keeps for the backward


def _needed(*inputs) -> bool:
    """Whether autograd will ask for a gradient of any of `inputs` (tensors or None). A loop, as in
    _plain."""
    if torch.is_grad_enabled():
        for t in inputs:
            if t is not None and t.requires_grad:
                return True
    return False


def _refuse_target_gradient(name: str, argument: str, t) -> None:
    if _needed(t):
        raise ValueError(
            f"gradkernels.torch.{name} computes no gradient with respect to {argument}, which requires "
            f"one: pass {argument}.detach()"
        )


def _scale_impl(gradient, scale):
    """gradient * scale (broadcast), C-ordered, as parameters are: autograd then takes the result
    as the parameter's .grad instead of copying it to the parameter's layout. Into memory NumPy
    allocates, which asks for huge pages: a (2048, 32000) float32 gradient scaled into a tensor of
    PyTorch's allocator took 126 ms here, most of it page faults."""
    out = torch.from_numpy(np.empty(tuple(gradient.shape), _array(gradient).dtype))
    return torch.mul(gradient, scale, out=out)


_scale = _operator("scale", "(Tensor gradient, Tensor scale) -> Tensor", _scale_impl,
                   lambda gradient, scale: gradient.new_empty(gradient.shape))


def _kept_times(gradient, scale):
    """A kept gradient times a loss's upstream gradient: the kept one itself where that is exactly 1
    (loss.backward() on the loss alone) in eager mode, else a scaled copy. At (2048, 32000) float32
    the copy into fresh pages took ~30 ms of the 85 a forward + backward took. Handing autograd a
    saved tensor is safe: autograd makes it a leaf's .grad only once the graph has let it go (else
    it copies it), and a hook that changes it in place moves its version, so a second backward
    through a retained graph raises instead of using it."""
    if scale.dim() == 0 and _plain((gradient, scale)) and scale.item() == 1.0:
        return gradient
    return _scale(gradient, scale)


def _fused_loss(name: str, schema: str, impl, fake, *, reduction_at: int, rows=False, target_gradient=None):
    """A loss operator returning (loss, gradient), and its autograd formula: the kept gradient times
    the upstream one. `reduction_at`: the index of the reduction among the operator's inputs;
    `rows`: a "none" reduction has a loss per row (the last dimension is the classes);
    `target_gradient`, for a loss differentiable in its second input too: (the input tensors its
    formula needs, from the inputs; the formula, of those, the options from the reduction on, the
    kept gradient and the upstream gradient)."""

    def setup_context(ctx, inputs, output):
        _kept_gradients(ctx, output[1:])
        ctx.set_materialize_grads(False)  # else the gradient output's own gradient arrives as zeros
        ctx.second = target_gradient is not None and inputs[1].requires_grad
        ctx.save_for_backward(output[1], *(target_gradient[0](inputs) if ctx.second else ()))
        ctx.options = inputs[reduction_at:]
        ctx.per_row = rows and ctx.options[0] == "none"
        ctx.inputs = len(inputs)

    def formula(ctx, grad_loss, _):
        _no_second_derivatives(name)
        if grad_loss is None:  # the loss does not reach what is differentiated
            return (None,) * ctx.inputs
        gradient, *saved = ctx.saved_tensors
        scale = grad_loss.unsqueeze(-1) if ctx.per_row else grad_loss
        grad = _kept_times(gradient, scale) if ctx.needs_input_grad[0] else None
        other = (target_gradient[1](saved, ctx.options, gradient, scale) if ctx.second and ctx.needs_input_grad[1]
                 else None)
        return (grad, other) + (None,) * (ctx.inputs - 2)

    return _operator(name, schema, impl, fake, (setup_context, formula))


@_beside_pytorch
def _cross_entropy_impl(logits, target, weight, ignore_index, reduction, label_smoothing, with_grad, backend):
    loss, grad = _ops(backend).softmax_cross_entropy(
        _array(logits), _array(target), weight=None if weight is None else _array(weight), reduction=reduction,
        ignore_index=ignore_index, label_smoothing=label_smoothing, with_grad=with_grad)
    return _result(loss), _gradient(grad)


def _cross_entropy_fake(logits, target, weight, ignore_index, reduction, label_smoothing, with_grad, backend):
    return (logits.new_empty(logits.shape[:-1] if reduction == "none" else ()),
            logits.new_empty(logits.shape) if with_grad else _nothing(logits))


def _probability_target_gradient(saved, options, gradient, scale):
    """d loss / d q_j = -(1 - eps) w_j log p_j of class-probability targets q (the smoothed target
    is (1 - eps) q + eps / C), times the mean's 1 / rows and the upstream gradient."""
    logits, weight = saved
    reduction, label_smoothing, _, backend = options
    factor = scale * -(1.0 - label_smoothing)
    if reduction == "mean":
        factor = factor / max(1, logits.numel() // logits.shape[-1])
    return _scale(_log_softmax(logits, backend), factor if weight is None else factor * weight)


_cross_entropy = _fused_loss(
    "cross_entropy",
    "(Tensor logits, Tensor target, Tensor? weight, int ignore_index, str reduction, float label_smoothing, "
    "bool with_grad, str backend) -> (Tensor, Tensor)",
    _cross_entropy_impl, _cross_entropy_fake, reduction_at=4, rows=True,
    target_gradient=(lambda inputs: (inputs[0], inputs[2]), _probability_target_gradient))


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  backend=None):
    """F.cross_entropy with the classes along the last dimension: logits (..., C), target integer
    classes (...) or class probabilities (..., C) (differentiable, as in PyTorch), per-class
    `weight` (C,). (F.cross_entropy takes the classes along dimension 1: the two agree on (N, C)
    logits.)"""
    _tensor("logits", logits)
    _tensor("target", target, floating=False)
    if weight is not None:
        _tensor("weight", weight)
    if target.dtype.is_floating_point and ignore_index != -100:
        raise ValueError(f"ignore_index ({ignore_index}) applies to integer class targets, not to class probabilities")
    _refuse_target_gradient("cross_entropy", "weight", weight)
    return _cross_entropy(logits, target, weight, int(ignore_index), _reduction(reduction), float(label_smoothing),
                          _needed(logits), _backend(backend))[0]


def _elementwise_loss(op_name: str, name: str, target_gradient):
    @_beside_pytorch
    def impl(pred, target, reduction, with_grad, backend):
        loss, grad = getattr(_ops(backend), op_name)(_array(pred), _array(target), reduction=reduction,
                                                     with_grad=with_grad)
        return _result(loss), _gradient(grad)

    def fake(pred, target, reduction, with_grad, backend):
        return ((_laid_out_like(pred) if reduction == "none" else pred.new_empty(())),
                _laid_out_like(pred) if with_grad else _nothing(pred))

    return _fused_loss(name, "(Tensor pred, Tensor target, str reduction, bool with_grad, str backend) -> "
                             "(Tensor, Tensor)", impl, fake, reduction_at=2, target_gradient=target_gradient)


_binary_cross_entropy_with_logits = _elementwise_loss(
    "sigmoid_binary_cross_entropy", "binary_cross_entropy_with_logits", target_gradient=None)
_mse_loss = _elementwise_loss("mse", "mse_loss", target_gradient=(
    lambda inputs: (), lambda saved, options, gradient, scale: _scale(gradient, -scale)))


def binary_cross_entropy_with_logits(logits, target, *, reduction="mean", backend=None):
    """F.binary_cross_entropy_with_logits without its weight and pos_weight: target of logits' shape."""
    _tensor("logits", logits)
    _tensor("target", target)
    _refuse_target_gradient("binary_cross_entropy_with_logits", "target", target)
    return _binary_cross_entropy_with_logits(logits, target, _reduction(reduction), _needed(logits),
                                             _backend(backend))[0]


def mse_loss(input, target, *, reduction="mean", backend=None):
    """F.mse_loss with target of input's shape (no broadcasting); differentiable in both."""
    _tensor("input", input)
    _tensor("target", target)
    return _mse_loss(input, target, _reduction(reduction), _needed(input, target), _backend(backend))[0]


# ---------------------------------------------------------------------------------------------
# Linear layers, PyTorch's way round: y = x weight^T + bias with weight (out_features, in_features),
# which is our w = weight^T (a Fortran-ordered view, which BLAS takes as it is)


def _layer_operands(x, weight, bias):
    _tensor("x", x)
    _tensor("weight", weight)
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"x has shape {tuple(x.shape)} and weight {tuple(weight.shape)}: x's last dimension must be "
            f"weight's in_features ({weight.shape[1]})"
        )
    if weight.dtype != x.dtype:
        raise TypeError(f"weight is {weight.dtype} but x is {x.dtype}: mixed float dtypes are not supported")
    if bias is not None:
        _tensor("bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias has shape {tuple(bias.shape)}; it must have shape ({weight.shape[0]},)")
        if bias.dtype != x.dtype:
            raise TypeError(f"bias is {bias.dtype} but x is {x.dtype}: mixed float dtypes are not supported")


def _rows(t: torch.Tensor) -> np.ndarray:
    """t as a NumPy matrix of its last dimension's columns (a view where its layout allows)."""
    return _array(t).reshape(-1, t.shape[-1])


def _weight_gradient_fake(weight: torch.Tensor) -> torch.Tensor:
    # our dw is laid out like the w it is given, weight^T: its transpose, the gradient of weight,
    # is then laid out like weight (C-ordered for a C-ordered weight, as autograd keeps it)
    return _laid_out_like(weight.t()).t()


def _layer_gradients(dx, dw, db, x):
    return (None if dx is None else _result(dx.reshape(x.shape)), None if dw is None else _result(dw).t(),
            _gradient(db))


def _layer(name: str, activation_saved: bool):
    """The forward and backward operators of linear (activation_saved False) or linear_relu."""

    def forward_impl(x, weight, bias, backend):
        y = getattr(_ops(backend), name)(_rows(x), _array(weight).T, None if bias is None else _array(bias))
        return _result(y.reshape(*x.shape[:-1], weight.shape[0]))

    def forward_fake(x, weight, bias, backend):
        return x.new_empty((*x.shape[:-1], weight.shape[0]))

    saved = "Tensor a, " if activation_saved else ""

    def backward_impl(grad, *args):
        *maybe_a, x, weight, with_bias, with_dx, backend = args
        ops = _ops(backend)
        if activation_saved:
            dx, dw, db = ops.linear_relu_backward(_rows(grad), _rows(maybe_a[0]), _rows(x), _array(weight).T,
                                                  with_bias=with_bias, with_dx=with_dx)
        else:
            dx, dw, db = ops.linear_backward(_rows(grad), _rows(x), _array(weight).T, with_bias=with_bias,
                                             with_dx=with_dx)
        return _layer_gradients(dx, dw, db, x)

    def backward_fake(grad, *args):
        *_, x, weight, with_bias, with_dx, backend = args
        return (x.new_empty(x.shape) if with_dx else _nothing(x), _weight_gradient_fake(weight),
                weight.new_empty((weight.shape[0],)) if with_bias else _nothing(weight))

    backward = _operator(
        f"{name}_backward",
        f"(Tensor grad, {saved}Tensor x, Tensor weight, bool with_bias, bool with_dx, str backend) -> "
        f"(Tensor, Tensor, Tensor)",
        backward_impl, backward_fake)

    def setup_context(ctx, inputs, output):
        x, weight, bias, backend = inputs
        ctx.save_for_backward(*((output,) if activation_saved else ()), x, weight)
        ctx.with_bias, ctx.backend = bias is not None, backend

    def formula(ctx, grad):
        _no_second_derivatives(name)
        with_dx = ctx.needs_input_grad[0]  # not for a first layer's input
        dx, dweight, dbias = backward(grad, *ctx.saved_tensors, ctx.with_bias, with_dx, ctx.backend)
        return dx if with_dx else None, dweight, dbias if ctx.with_bias else None, None

    return _operator(name, "(Tensor x, Tensor weight, Tensor? bias, str backend) -> Tensor", forward_impl,
                     forward_fake, (setup_context, formula))


_linear = _layer("linear", activation_saved=False)
_linear_relu = _layer("linear_relu", activation_saved=True)


def linear(x, weight, bias=None, *, backend=None):
    """F.linear: x (..., in_features) weight^T + bias, weight (out_features, in_features)."""
    _layer_operands(x, weight, bias)
    return _linear(x, weight, bias, _backend(backend))


def linear_relu(x, weight, bias=None, *, backend=None):
    """relu(F.linear(x, weight, bias)), the bias add and the ReLU in one pass over the GEMM's output."""
    _layer_operands(x, weight, bias)
    return _linear_relu(x, weight, bias, _backend(backend))


def _linear_cross_entropy_impl(x, weight, bias, target, class_weight, ignore_index, reduction, label_smoothing,
                               chunk_size, with_grad, backend):
    loss, dx, dw, db = _ops(backend).linear_cross_entropy(
        _array(x), _array(weight).T, None if bias is None else _array(bias), _array(target),
        weight=None if class_weight is None else _array(class_weight), reduction=reduction,
        ignore_index=ignore_index, label_smoothing=label_smoothing, chunk_size=chunk_size, with_grad=with_grad)
    return (_result(loss),) + _layer_gradients(dx, dw, db, x)


def _linear_cross_entropy_fake(x, weight, bias, target, class_weight, ignore_index, reduction, label_smoothing,
                               chunk_size, with_grad, backend):
    if not with_grad:
        return x.new_empty(()), _nothing(x), _nothing(weight), _nothing(weight)
    return (x.new_empty(()), x.new_empty(x.shape), _weight_gradient_fake(weight),
            weight.new_empty((weight.shape[0],)) if bias is not None else _nothing(weight))


def _linear_cross_entropy_setup(ctx, inputs, output):
    _kept_gradients(ctx, output[1:])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(*output[1:])
    ctx.inputs = len(inputs)


def _linear_cross_entropy_formula(ctx, grad_loss, *_):
    _no_second_derivatives("linear_cross_entropy")
    if grad_loss is None:
        return (None,) * ctx.inputs
    kept = ctx.saved_tensors  # the gradients of x, weight and bias (not wanted without a bias)
    grads = (_kept_times(g, grad_loss) if wanted else None for g, wanted in zip(kept, ctx.needs_input_grad))
    return (*grads,) + (None,) * (ctx.inputs - 3)


_linear_cross_entropy_op = _operator(
    "linear_cross_entropy",
    "(Tensor x, Tensor weight, Tensor? bias, Tensor target, Tensor? class_weight, int ignore_index, str reduction, "
    "float label_smoothing, int? chunk_size, bool with_grad, str backend) -> (Tensor, Tensor, Tensor, Tensor)",
    _linear_cross_entropy_impl, _linear_cross_entropy_fake,
    (_linear_cross_entropy_setup, _linear_cross_entropy_formula))


def linear_cross_entropy(x, weight, bias, target, *, class_weight=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0, chunk_size=None, backend=None):
    """cross_entropy(linear(x, weight, bias), target, ...) without the (N, C) logits: x (N, D),
    weight (C, D), integer target (N,). Its gradients are computed in the forward, a chunk of rows
    at a time (see gradkernels.linear_cross_entropy), so memory stays at a chunk's logits through
    forward and backward. reduction "mean" or "sum" (a "none" loss would need the upstream gradient
    of each row before the gradients of weight could be formed)."""
    _layer_operands(x, weight, bias)
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (N, D), got shape {tuple(x.shape)}")
    _tensor("target", target, floating=False)
    if class_weight is not None:
        _tensor("class_weight", class_weight)
    _refuse_target_gradient("linear_cross_entropy", "class_weight", class_weight)
    reduction = _reduction(reduction)
    if reduction == "none":
        raise ValueError('gradkernels.torch.linear_cross_entropy takes reduction "mean" or "sum", not "none"')
    return _linear_cross_entropy_op(x, weight, bias, target, class_weight, int(ignore_index), reduction,
                                    float(label_smoothing), chunk_size, _needed(x, weight, bias), _backend(backend))[0]
