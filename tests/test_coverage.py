"""Every public op is covered by everything that should cover it, so that an op added without its
benchmark, fuzz case or validation case fails here instead of going unchecked. (The self-test's
coverage is checked in test_cli, the leak test's in test_leaks.)"""

import importlib
import pathlib

import gradkernels as gk
from gradkernels import _bench
from gradkernels._ops import OPS

import test_fuzz
import test_validation

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_package_exports_every_op():
    assert set(OPS) <= set(gk.__all__)
    assert all(callable(getattr(gk, name)) for name in OPS)


def test_bench_has_a_case_and_a_plain_numpy_expression_for_every_op():
    assert set(_bench.OPS) == set(OPS) == set(_bench.IDIOMS)


def test_the_asv_suite_times_every_op(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    timed = set()
    for family in ("activations", "softmax", "losses", "linear"):
        module = importlib.import_module(f"benchmarks.{family}")
        timed |= {op for cls in vars(module).values() if isinstance(cls, type) for op in getattr(cls, "OPS", ())}
    assert timed == set(OPS)


def test_the_fuzz_suite_feeds_every_op():
    assert set(test_fuzz.CASES) == set(OPS)


def test_the_validation_tests_cover_every_op_s_float_arguments():
    assert set(test_validation.FLOAT_ARGS) == set(OPS)
