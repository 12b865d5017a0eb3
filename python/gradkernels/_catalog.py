"""Every kernel and every public op, declared once; the rest of the package and its tests derive
their lists from here.

A kernel is what each backend implements, under the same name in the same family file of each
(`reference/<family>.py`, `kernels/<family>.py`, `csrc/<family>.c`): its parameters are the
contract every backend's version of it is checked against. An op is a public function of
`gradkernels._ops`: the kernels it calls, its array arguments (the values a caller passes and
their shapes, from which tests, the self-check and the benchmarks build their inputs) and the
plain NumPy a user would write instead, which the benchmarks time against it.

Shapes are tuples of dimension names shared by the op's arguments: "..." stands for any number of
leading axes (every axis of an elementwise op), "bits" for the bytes that pack one bit per element
of the first argument.

This module imports nothing of the package, so every layer may import it.
"""

import dataclasses

FAMILIES = ("activations", "softmax", "losses", "linear")


@dataclasses.dataclass(frozen=True)
class Kernel:
    name: str
    family: str
    # How the API lays out its arrays: "elementwise" (1-D, equal length), "rows" (2-D (rows,
    # classes), C-contiguous) or "linear" (2-D, C- or Fortran-contiguous inputs, see _backends).
    layout: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    scalars: tuple[str, ...] = ()

    @property
    def parameters(self) -> tuple[str, ...]:
        """Outputs first, then inputs, then scalars: every backend's signature."""
        return self.outputs + self.inputs + self.scalars


def _kernels(family, layout, *entries):
    return tuple(Kernel(name, family, layout, *params) for name, *params in entries)


KERNELS: tuple[Kernel, ...] = (
    *_kernels(
        "activations", "elementwise",
        ("relu_forward", ("y",), ("x",)),
        ("relu_forward_mask", ("y", "mask"), ("x",)),
        ("relu_backward", ("dx",), ("dy", "y")),
        ("relu_backward_mask", ("dx",), ("dy", "mask")),
        ("leaky_relu_forward", ("y",), ("x",), ("negative_slope",)),
        ("leaky_relu_backward", ("dx",), ("dy", "x"), ("negative_slope",)),
        ("sigmoid_forward", ("y",), ("x",)),
        ("sigmoid_backward", ("dx",), ("dy", "y")),
        ("tanh_forward", ("y",), ("x",)),
        ("tanh_backward", ("dx",), ("dy", "y")),
    ),
    *_kernels(
        "softmax", "rows",
        ("softmax_forward", ("p",), ("z",)),
        ("softmax_backward", ("dz",), ("dp", "p")),
        ("log_softmax_forward", ("logp",), ("z",)),
        ("log_softmax_backward", ("dz",), ("dlogp", "logp")),
    ),
    *_kernels(
        "losses", "rows",
        ("softmax_cross_entropy", ("dz", "losses"), ("z", "labels", "weight"),
         ("ignore_index", "label_smoothing", "grad_scale")),
        ("softmax_cross_entropy_soft", ("dz", "losses"), ("z", "targets", "weight"), ("label_smoothing", "grad_scale")),
    ),
    *_kernels(
        "losses", "elementwise",
        ("sigmoid_binary_cross_entropy", ("dz", "losses"), ("z", "targets"), ("grad_scale",)),
        ("mse", ("dpred", "losses"), ("pred", "target"), ("grad_scale",)),
    ),
    *_kernels(
        "linear", "linear",
        ("linear_forward", ("y",), ("x", "w", "b")),
        ("linear_backward", ("dx", "dw", "db"), ("dy", "x", "w")),
        ("linear_relu_forward", ("y",), ("x", "w", "b")),
        ("linear_relu_backward", ("dx", "dw", "db", "dz"), ("da", "a", "x", "w")),
        ("linear_cross_entropy", ("dx", "dw", "db", "losses", "logits"), ("x", "w", "b", "labels", "weight"),
         ("ignore_index", "label_smoothing", "grad_scale")),
    ),
)
KERNEL_NAMES = tuple(k.name for k in KERNELS)
KERNEL = {k.name: k for k in KERNELS}


@dataclasses.dataclass(frozen=True)
class Arg:
    """An array argument of an op: its name, the values a caller passes in it, and its shape.

    Values: "any" (any float), "summed" (operands of long sums: tests keep them exactly
    summable), "probability" (in [0, 1]: a sigmoid's or softmax's output, a target), "tanh" (a
    tanh's output), "log_probability" (a log_softmax's output), "relu_output" (a ReLU's output),
    "mask" (the packed bits of relu_with_mask), "labels" (integer classes in [0, C)), "targets"
    (labels, or class probabilities of the logits' shape). An optional argument may be None."""

    name: str
    values: str
    shape: tuple[str, ...]
    optional: bool = False

    @property
    def is_float(self) -> bool:
        """Whether the op takes it only as a float array."""
        return self.values not in ("mask", "labels", "targets")


# The sizes the benchmarks and `tune` measure an op at, per size class (the classes of
# `_tuning`): the size of each dimension its arguments name. "tiny" is the seed networks' size
# (3 -> 10 -> 6 -> 3 at batch 32), where a call's fixed cost is all there is to time.
SIZE_CLASSES = ("tiny", "small", "medium", "large")
ELEMENTWISE_SIZES = {"tiny": {"...": (32, 10)}, "small": {"...": (256, 256)}, "medium": {"...": (1024, 1024)},
                     "large": {"...": (4096, 4096)}}
ROW_SIZES = {"tiny": {"...": (32,), "C": 10}, "small": {"...": (256,), "C": 100},
             "medium": {"...": (4096,), "C": 1000}, "large": {"...": (2048,), "C": 32000}}
CLASS_SIZES = {"tiny": {"...": (32,), "C": 3}, "small": {"...": (4096,), "C": 10},
               "medium": {"...": (4096,), "C": 1000}, "large": {"...": (2048,), "C": 32000}}
LAYER_SIZES = {"tiny": {"N": 32, "D": 10, "H": 6}, "small": {"N": 64, "D": 64, "H": 64},
               "medium": {"N": 512, "D": 512, "H": 512}, "large": {"N": 4096, "D": 1024, "H": 1024}}
# "target" is no size class (a call takes ~10 s): the shape of the README's fused-against-unfused
# table, which asv's LinearCrossEntropyPaths measures with GRADKERNELS_BENCH_SIZES=target.
CLASSIFIER_SIZES = {"tiny": {"N": 32, "D": 6, "C": 3}, "small": {"N": 512, "D": 64, "C": 10},
                    "medium": {"N": 2048, "D": 256, "C": 1000}, "large": {"N": 4096, "D": 1024, "C": 8000},
                    "target": {"N": 8192, "D": 1024, "C": 32000}}


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    family: str
    kernels: tuple[str, ...]
    arrays: tuple[Arg, ...]
    idiom: str  # the plain NumPy a user would write for it, as it reads
    sizes: dict  # size class -> the size of each dimension the arrays name


_ANY = ("...",)
_ROWS = ("...", "C")


def _elementwise(name, kernels, idiom, *arrays):
    return Op(name, "activations", kernels, tuple(Arg(a, values, _ANY) for a, values in arrays), idiom,
              ELEMENTWISE_SIZES)


def _rowwise(name, kernels, idiom, *arrays):
    return Op(name, "softmax", kernels, tuple(Arg(a, values, _ROWS) for a, values in arrays), idiom, ROW_SIZES)


OPS: tuple[Op, ...] = (
    _elementwise("relu", ("relu_forward",), "np.maximum(x, 0)", ("x", "any")),
    _elementwise("relu_backward", ("relu_backward",), "dy * (y > 0)", ("dy", "any"), ("y", "relu_output")),
    _elementwise("relu_with_mask", ("relu_forward_mask",), "np.maximum(x, 0), np.packbits(x > 0)", ("x", "any")),
    Op("relu_backward_from_mask", "activations", ("relu_backward_mask",),
       (Arg("dy", "any", _ANY), Arg("mask", "mask", ("bits",))), "dy * np.unpackbits(mask)", ELEMENTWISE_SIZES),
    _elementwise("leaky_relu", ("leaky_relu_forward",), "np.maximum(x, 0.01 * x)", ("x", "any")),
    _elementwise("leaky_relu_backward", ("leaky_relu_backward",), "np.where(x > 0, dy, 0.01 * dy)",
                 ("dy", "any"), ("x", "any")),
    _elementwise("sigmoid", ("sigmoid_forward",), "1 / (1 + np.exp(-x))", ("x", "any")),
    _elementwise("sigmoid_backward", ("sigmoid_backward",), "dy * y * (1 - y)", ("dy", "any"), ("y", "probability")),
    _elementwise("tanh", ("tanh_forward",), "np.tanh(x)", ("x", "any")),
    _elementwise("tanh_backward", ("tanh_backward",), "dy * (1 - y * y)", ("dy", "any"), ("y", "tanh")),
    _rowwise("softmax", ("softmax_forward",), "e = exp(z - max z): e / sum e", ("z", "any")),
    _rowwise("softmax_backward", ("softmax_backward",), "p * (dp - sum(dp * p))",
             ("dp", "summed"), ("p", "probability")),
    _rowwise("log_softmax", ("log_softmax_forward",), "s = z - max z: s - log(sum exp s)", ("z", "any")),
    _rowwise("log_softmax_backward", ("log_softmax_backward",), "dl - exp(lp) * sum(dl)",
             ("dlogp", "summed"), ("logp", "log_probability")),
    Op("softmax_cross_entropy", "losses", ("softmax_cross_entropy", "softmax_cross_entropy_soft"),
       (Arg("logits", "any", _ROWS), Arg("labels", "targets", _ANY)),
       "max-shifted softmax, mean(log sum - z[label]), (p - onehot) / N", CLASS_SIZES),
    Op("sigmoid_binary_cross_entropy", "losses", ("sigmoid_binary_cross_entropy",),
       (Arg("logits", "any", _ANY), Arg("targets", "probability", _ANY)),
       "mean(max(z, 0) - z t + log1p(exp(-|z|))), (1 / (1 + exp(-z)) - t) / n", ELEMENTWISE_SIZES),
    Op("mse", "losses", ("mse",), (Arg("pred", "any", _ANY), Arg("target", "any", _ANY)),
       "d = p - y: mean(d * d), 2 d / n", ELEMENTWISE_SIZES),
    Op("linear", "linear", ("linear_forward",),
       (Arg("x", "summed", ("N", "D")), Arg("w", "summed", ("D", "H")), Arg("b", "summed", ("H",), optional=True)),
       "x @ w + b", LAYER_SIZES),
    Op("linear_relu", "linear", ("linear_relu_forward",),
       (Arg("x", "summed", ("N", "D")), Arg("w", "summed", ("D", "H")), Arg("b", "summed", ("H",), optional=True)),
       "np.maximum(x @ w + b, 0)", LAYER_SIZES),
    Op("linear_backward", "linear", ("linear_backward",),
       (Arg("dy", "summed", ("N", "H")), Arg("x", "summed", ("N", "D")), Arg("w", "summed", ("D", "H"))),
       "dy @ w.T, x.T @ dy, dy.sum(0)", LAYER_SIZES),
    Op("linear_relu_backward", "linear", ("linear_relu_backward",),
       (Arg("da", "summed", ("N", "H")), Arg("a", "relu_output", ("N", "H")), Arg("x", "summed", ("N", "D")),
        Arg("w", "summed", ("D", "H"))),
       "dz = da * (a > 0): dz @ w.T, x.T @ dz, dz.sum(0)", LAYER_SIZES),
    Op("linear_cross_entropy", "linear", ("linear_cross_entropy",),
       (Arg("x", "summed", ("N", "D")), Arg("w", "summed", ("D", "C")), Arg("b", "summed", ("C",), optional=True),
        Arg("labels", "labels", ("N",))),
       "z = x @ w + b, softmax_cross_entropy's idiom, g @ w.T, x.T @ g, g.sum(0)", CLASSIFIER_SIZES),
)
OP_NAMES = tuple(o.name for o in OPS)
OP = {o.name: o for o in OPS}
