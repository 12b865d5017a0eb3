"""What "auto" runs each op on: the table `python -m gradkernels tune` writes, per op, dtype and
size class, else the table shipped in the package, else the default order."""

import json

import numpy as np
import pytest

import gradkernels as gk
from gradkernels import __main__ as cli
from gradkernels import _backends, _bench, _tuning

DEFAULT = _backends.resolve("auto").name


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory for the table and no shipped table; the table is read afresh
    before and after."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(_tuning, "SHIPPED", tmp_path / "no-shipped-table.json")
    _tuning.forget()
    yield tmp_path
    _tuning.forget()


def _file(table: dict, variant=None) -> str:
    """A table file holding `table` for `variant` (by default the C variant in force)."""
    return json.dumps({"tables": {variant or _tuning.variant(): {"cpu": "test", "table": table}}})


def _write(table: dict) -> None:
    path = _tuning.table_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_file(table))
    _tuning.forget()


def _stored(path, variant=None) -> dict:
    return json.loads(path.read_text())["tables"][variant or _tuning.variant()]["table"]


def _spy(monkeypatch, backend_name, kernel):
    calls = []
    kernels = _backends.info(backend_name).kernels
    real = getattr(kernels, kernel)

    def spy(*args):
        calls.append(args[0].size)
        return real(*args)

    monkeypatch.setattr(kernels, kernel, spy)
    return calls


class _ZerosRandom:
    """Stands in for a random generator where only the shapes of the inputs matter."""

    def standard_normal(self, shape):
        return np.zeros(shape)

    def uniform(self, size):
        return np.zeros(size)

    def integers(self, low, high, size):
        return np.zeros(size, np.int64)


def test_size_classes_hold_the_shapes_the_bench_and_tune_measure():
    bounds = (1, _tuning.SMALL - 1, _tuning.SMALL, _tuning.MEDIUM - 1, _tuning.MEDIUM, _tuning.LARGE - 1, _tuning.LARGE)
    assert [_tuning.size_class(n) for n in bounds] == ["tiny", "tiny", "small", "small", "medium", "medium", "large"]
    for bits in range(1, 64):  # what "auto" remembers a choice by
        assert _tuning.size_class(1 << (bits - 1)) == _tuning.size_class((1 << bits) - 1), bits
    cases = _bench.cases(None)
    with np.errstate(divide="ignore"):  # log of the zero inputs' probabilities
        for op in _bench.OPS:
            for size in _bench.SIZES:
                case = cases[op](size)
                first = case.inputs(_ZerosRandom(), np.dtype(np.float32))[0]
                assert _tuning.size_class(first.size) == size, (op, size, first.shape)


def test_without_a_table_auto_takes_the_default_order(cache):
    assert _tuning.table() == {}
    assert _tuning.choose("relu", np.ones(10, np.float32)) == "auto"


@pytest.mark.parametrize("variant", ["avx512", "avx2", "baseline"])
def test_the_shipped_table_covers_every_case_the_bench_measures_with_backends_we_have(variant):
    stored = _stored(_tuning.SHIPPED, variant)
    expected = {_tuning.key(op, dtype, size) for op in _bench.OPS for dtype in ("float32", "float64")
                for size in _bench.SIZES}
    assert set(stored) == expected
    assert set(stored.values()) <= set(_backends.NAMES)


def test_auto_follows_the_table_of_the_c_variant_in_force(cache):
    if _tuning.variant() == "none":
        pytest.skip("needs the C backend")
    path = _tuning.table_path()
    path.parent.mkdir(parents=True)
    tables = {"tables": {"some-other-isa": {"cpu": "test", "table": {"relu/float32/tiny": "numpy"}},
                         _tuning.variant(): {"cpu": "test", "table": {"relu/float32/tiny": "c"}}}}
    path.write_text(json.dumps(tables))
    assert _tuning.choose("relu", np.ones(10, np.float32)) == "c"


def test_without_this_machines_table_auto_follows_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shipped = tmp_path / "shipped.json"
    shipped.write_text(_file({"relu/float32/tiny": "numpy"}))
    monkeypatch.setattr(_tuning, "SHIPPED", shipped)
    _tuning.forget()
    try:
        assert _tuning.choose("relu", np.ones(10, np.float32)) == "numpy"
        _write({"sigmoid/float32/tiny": "numpy"})  # this machine's table replaces the shipped one whole
        assert _tuning.choose("relu", np.ones(10, np.float32)) == "auto"
        assert _tuning.choose("sigmoid", np.ones(10, np.float32)) == "numpy"
    finally:
        _tuning.forget()


def test_auto_follows_the_table_per_op_dtype_and_size(cache, monkeypatch):
    _write({"relu/float32/tiny": "numpy", "relu/float64/medium": "numpy"})
    calls = _spy(monkeypatch, "numpy", "relu_forward")
    gk.relu(np.ones(100, np.float32))  # in the table
    gk.relu(np.ones(1000, np.float32) * 1.0)  # in the table
    gk.relu(x=np.ones(10, np.float32))  # by keyword too
    assert calls == [100, 1000, 10]
    if DEFAULT != "numpy":
        gk.relu(np.ones(100, np.float64))  # float64 tiny: not in the table
        gk.relu(np.ones(_tuning.LARGE, np.float64))  # large: not in the table
        gk.sigmoid(np.ones(100, np.float32))  # another op
        assert calls == [100, 1000, 10]
    with gk.use_backend(DEFAULT):  # a backend chosen by name is not overridden
        gk.relu(np.ones(100, np.float32))
    assert len(calls) == 3 or DEFAULT == "numpy"
    _write({"relu/float32/medium": "numpy"})  # a new table: the choices remembered per case go with the old
    del calls[:]
    gk.relu(np.ones(100, np.float32))
    gk.relu(np.ones(_tuning.MEDIUM, np.float32))
    assert calls == [_tuning.MEDIUM] or DEFAULT == "numpy"


def test_a_table_naming_an_unavailable_or_unknown_backend_is_not_followed(cache):
    unavailable = [n for n, b in gk.backends().items() if not b["available"]] or ["no-such-backend"]
    _write({"relu/float32/tiny": unavailable[0], "sigmoid/float32/tiny": "numpy"})
    assert _tuning.choose("relu", np.ones(10, np.float32)) == "auto"
    assert _tuning.choose("sigmoid", np.ones(10, np.float32)) == "numpy"


@pytest.mark.parametrize("content", ["not json", "[]", '{"table": {"relu": "c"}}', '{"tables": 3}',
                                     '{"tables": {"avx2": {"table": {"relu": "c"}}, "baseline": 3}}'])
def test_an_unreadable_table_is_ignored(cache, content):
    path = _tuning.table_path()
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert _tuning.table() == {}
    assert gk.relu(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]


def test_tune_output_writes_the_table_elsewhere(cache, capsys):
    target = cache / "elsewhere" / "tuned.json"
    target.parent.mkdir()
    tables = {"another-variant": {"cpu": "test", "table": {"relu/float32/small": "numpy"}},
              _tuning.variant(): {"cpu": "test", "table": {"mse/float32/small": "numpy"}}}
    target.write_text(json.dumps({"tables": tables}))
    assert cli.main(["tune", "--op", "relu", "--size", "small", "--dtype", "float64", "--repeat", "2", "--warmup", "1",
                     "--output", str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    assert sorted(_stored(target)) == ["mse/float32/small", "relu/float64/small"]  # a row added
    assert _stored(target, "another-variant") == {"relu/float32/small": "numpy"}  # kept
    assert not _tuning.table_path().exists()


def test_tune_writes_the_fastest_backend_per_row_where_auto_finds_it(cache, capsys):
    assert cli.main(["tune", "--op", "mse", "--size", "small", "--dtype", "float32", "--repeat", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert str(_tuning.table_path()) in out
    stored = _stored(_tuning.table_path())
    available = [n for n, b in gk.backends().items() if b["available"]]
    assert list(stored) == ["mse/float32/small"] and stored["mse/float32/small"] in available
    assert _tuning.choose("mse", np.ones(_tuning.SMALL, np.float32)) == stored["mse/float32/small"]


def test_the_table_is_kept_per_version_and_cpu(cache):
    name = _tuning.table_path().name
    assert name.startswith(f"tune-{gk.__version__}-") and name.endswith(".json")
    assert _tuning.table_path().parent == cache / "gradkernels"


def test_tune_keeps_the_preferred_backend_unless_another_is_clearly_faster():
    preferred, other = _backends.AUTO_PREFERENCE[0], _backends.AUTO_PREFERENCE[1]
    assert _tuning.choice({preferred: 1.04, other: 1.0}) == preferred
    assert _tuning.choice({preferred: 1.06, other: 1.0}) == other
    assert _tuning.choice({other: 1.0, "numpy": 0.5}) == "numpy"
