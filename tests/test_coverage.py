"""Every public op is declared in the catalog as it is defined, and covered by what does not derive
from the catalog, so that an op added without its benchmark code fails here instead of going
unchecked. (The fuzz, validation and leak tests build their cases from the catalog; the fuzz
suite checks that the ops it cannot draw from a declaration have cases of their own, test_cli that
the self-test covers every op.)"""

import importlib
import inspect
import pathlib

import gradkernels as gk
from gradkernels import _bench, _catalog
from gradkernels._ops import OPS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_package_exports_every_op():
    assert set(OPS) <= set(gk.__all__)
    assert all(callable(getattr(gk, name)) for name in OPS)


def test_every_op_is_declared_in_the_catalog_with_its_array_arguments():
    assert tuple(OPS) == _catalog.OP_NAMES
    for name, impl in OPS.items():
        params = list(inspect.signature(impl).parameters.values())[1:]  # after the kernels
        arrays = _catalog.OP[name].arrays
        assert [p.name for p in params[:len(arrays)]] == [a.name for a in arrays], name
        for param, arg in zip(params, arrays):
            assert arg.optional or param.default is not None, (name, arg.name)
        assert set(_catalog.OP[name].kernels) <= set(_catalog.KERNEL_NAMES), name
    assert {k for op in _catalog.OPS for k in op.kernels} == set(_catalog.KERNEL_NAMES)


def test_bench_has_a_case_a_plain_numpy_expression_and_a_pytorch_entry_for_every_op():
    assert set(_bench.OPS) == set(OPS) == set(_bench.IDIOMS) == set(_bench.torch_calls(None))
    torch = _bench._torch()
    if torch is not None:
        assert set(_bench.torch_calls(torch)) == set(OPS)
    for op in _catalog.OPS:
        assert set(op.sizes) >= set(_bench.SIZES), op.name


def test_the_asv_suite_times_every_op(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    timed = set()
    for family in _catalog.FAMILIES:
        module = importlib.import_module(f"benchmarks.{family}")
        timed |= {op for cls in vars(module).values() if isinstance(cls, type) for op in getattr(cls, "OPS", ())}
    assert timed == set(OPS)

