"""Every public op is covered by everything that should cover it, so that an op added without its
benchmark, fuzz case or validation case fails here instead of going unchecked. (The self-test's
coverage is checked in test_cli, the leak test's in test_leaks.)"""

import importlib
import pathlib

import inspect

import gradkernels as gk
from gradkernels import _bench, _catalog
from gradkernels._ops import OPS

import test_fuzz
import test_validation

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


def test_bench_has_a_case_for_every_op():
    assert set(_bench.OPS) == set(OPS)


def test_the_asv_suite_times_every_op(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    timed = set()
    for family in _catalog.FAMILIES:
        module = importlib.import_module(f"benchmarks.{family}")
        timed |= {op for cls in vars(module).values() if isinstance(cls, type) for op in getattr(cls, "OPS", ())}
    assert timed == set(OPS)


def test_the_fuzz_suite_feeds_every_op():
    assert set(test_fuzz.CASES) == set(OPS)


def test_the_validation_tests_cover_every_op_s_float_arguments():
    assert set(test_validation.FLOAT_ARGS) == set(OPS)
