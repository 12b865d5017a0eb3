import json
import subprocess
import sys
import time

import numpy as np
import pytest

import gradkernels as gk
from gradkernels import __main__ as cli
from gradkernels import _backends, _bench, _catalog


def test_info_lists_versions_backends_and_cpu():
    result = subprocess.run([sys.executable, "-m", "gradkernels", "info"], capture_output=True, text=True, check=True)
    for needle in ("gradkernels", "numpy", "cpu features", "threads", "backend"):
        assert needle in result.stdout
    for name in gk.backends():
        assert f"\n{name} " in result.stdout
    if gk.backends()["c"]["available"]:
        assert f"running {gk.backends()['c']['variant']}" in result.stdout  # the "c variants" line


def test_check_passes_and_prints_a_table():
    result = subprocess.run([sys.executable, "-m", "gradkernels", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "softmax_cross_entropy" in result.stdout and "worked example" in result.stdout
    assert result.stdout.rstrip().endswith(" 0 failed")


def test_check_fails_when_a_kernel_is_wrong(monkeypatch, capsys):
    kernels = _backends.info("numpy").kernels
    correct = kernels.sigmoid_backward

    def off_by_a_little(dx, dy, y):
        correct(dx, dy, y)
        dx *= 1.001

    monkeypatch.setattr(kernels, "sigmoid_backward", off_by_a_little)
    assert cli.main(["check", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    failing = [line for line in out.splitlines() if "FAIL" in line]
    # the op itself, and the worked example that composes it; nothing else
    assert failing and all(line.startswith(("sigmoid ", "worked example")) for line in failing)


def test_check_reports_a_crashing_op_as_a_failed_row(monkeypatch, capsys):
    kernels = _backends.info("numpy").kernels

    def broken(*args):
        raise np.linalg.LinAlgError("boom")

    monkeypatch.setattr(kernels, "linear_forward", broken)
    assert cli.main(["check", "--dtype", "float32"]) == 1
    assert "LinAlgError: boom" in capsys.readouterr().out


def test_check_runs_every_public_op(monkeypatch):
    from gradkernels import _selftest
    from gradkernels._ops import OPS

    numpy_ops, called = gk.backend("numpy"), set()

    class Recording:
        def __getattr__(self, name):
            called.add(name)
            return getattr(numpy_ops, name)

    monkeypatch.setattr(_selftest, "backend", lambda name: Recording())
    for case in _selftest.CASES:
        assert _selftest.check_case(case, "numpy", "float32").ok, case.name
    assert called == set(OPS)


def test_check_refuses_an_unavailable_backend(capsys, unavailable_backend):
    assert cli.main(["check", "--backend", unavailable_backend]) == 2
    assert "is not available: switched off by this test" in capsys.readouterr().err


def test_bench_prints_the_side_by_side_table_and_writes_json(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    argv = ["bench", "--op", "relu", "--op", "softmax_cross_entropy", "--op", "linear_backward", "--size", "small",
            "--dtype", "float32", "--dtype", "float64", "--repeat", "3", "--warmup", "1", "--no-torch",
            "--json", str(out_file)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("copy bandwidth (the limit):")
    c = gk.backends()["c"]
    assert lines[1].startswith(f"c backend: the {c['variant']} variant" if c["available"] else
                               f"c backend unavailable: {c['reason']}")
    available = [n for n, b in gk.backends().items() if b["available"]]
    entrants = (available + ["auto"] if len(available) > 1 else available) + [_bench.PLAIN_NUMPY]
    assert lines[2].split() == ["op", "shape", "dtype"] + [w for name in entrants for w in (*name.split(), "ms")] + [
        "best", "x", "numpy", "GB/s", "%", "copy"] + (["auto/best"] if "auto" in entrants else [])
    rows, legend = lines[3:9], lines[9:]
    assert legend == ["", "x numpy: over plain numpy, the NumPy a user writes for the op:",
                      "  relu: np.maximum(x, 0)", f"  softmax_cross_entropy: {_catalog.OP['softmax_cross_entropy'].idiom}",
                      "  linear_backward: dy @ w.T, x.T @ dy, dy.sum(0)"]
    assert len(rows) == 6 and [r.split()[0] for r in rows] == ["relu"] * 2 + ["softmax_cross_entropy"] * 2 + ["linear_backward"] * 2
    assert rows[0].split()[1] == "256x256" and rows[2].split()[1] == "4096x10"
    tail = -1 if "auto" in entrants else None
    assert rows[0].split()[:tail][-1].endswith("%") and rows[-1].split()[:tail][-2:] == ["-", "-"]  # GEMMs: no GB/s
    result = json.loads(out_file.read_text())
    assert result["copy_bandwidth_bytes_per_second"] > 0 and result["threads"] == gk.get_num_threads()
    assert result["c_variant"] == c["variant"]
    first = result["rows"][0]
    assert first["op"] == "relu" and first["dtype"] == "float32" and first["bytes"] == 2 * 256 * 256 * 4
    assert set(first["seconds"]) == set(entrants) and all(s > 0 for s in first["seconds"].values())
    best = min(available, key=first["seconds"].get)
    speedup = first["seconds"][_bench.PLAIN_NUMPY] / first["seconds"][best]
    assert float(rows[0].split()[3 + len(entrants) + 1]) == pytest.approx(speedup, abs=0.006)  # x numpy
    if "auto" in entrants:  # its time over the best backend's
        assert float(rows[0].split()[-1]) == pytest.approx(first["seconds"]["auto"] / first["seconds"][best], abs=0.006)


def _arrays(result) -> list[np.ndarray]:
    return [np.asarray(part, np.float64) for part in (result if isinstance(result, tuple) else (result,))]


@pytest.mark.parametrize("op", _bench.OPS)
def test_the_plain_numpy_that_x_numpy_divides_by_computes_what_the_op_does(op):
    case = _bench.cases(None)[op]("tiny")
    inputs = case.inputs(np.random.default_rng(0), np.dtype(np.float64))
    ours, theirs = _arrays(case.call(gk.backend("numpy"), *inputs)), _arrays(case.idiom(*inputs))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_bench_always_includes_numpy_as_the_baseline(capsys):
    assert cli.main(["bench", "--op", "mse", "--size", "small", "--backend", "c" if gk.backends()["c"]["available"]
                     else "numpy", "--repeat", "2", "--warmup", "1", "--no-torch"]) == 0
    assert "numpy ms" in capsys.readouterr().out


def test_bench_writes_the_table_as_markdown(tmp_path):
    md = tmp_path / "table.md"
    assert cli.main(["bench", "--op", "mse", "--size", "small", "--repeat", "2", "--warmup", "1", "--no-torch",
                     "--markdown", str(md)]) == 0
    lines = md.read_text().splitlines()
    assert lines[0].startswith("| op | shape | dtype | numpy ms |") and set(lines[1].replace("|", "").split()) == {"---"}
    assert lines[2].startswith("| mse | 256x256 | float32 |")
    assert lines[3:] == ["", "x numpy: over plain numpy, the NumPy a user writes for the op:", f"  mse: {_catalog.OP['mse'].idiom}"]


def test_bench_draws_the_speedups(tmp_path):
    pytest.importorskip("matplotlib")
    chart = tmp_path / "speedups.png"
    assert cli.main(["bench", "--op", "relu", "--op", "tanh", "--size", "small", "--repeat", "2", "--warmup", "1",
                     "--no-torch", "--plot", str(chart)]) == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 5000


def test_bench_without_matplotlib_refuses_plot_before_measuring(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert cli.main(["bench", "--op", "relu", "--size", "small", "--plot", "x.png"]) == 2
    captured = capsys.readouterr()
    assert "--plot needs matplotlib" in captured.err and captured.out == ""


def test_bench_times_calls_shorter_than_a_sample_in_loops_and_reports_seconds_per_call():
    calls = {"fast": 0, "slow": 0}

    def fast():
        calls["fast"] += 1

    def slow():
        calls["slow"] += 1
        time.sleep(_bench.MIN_SAMPLE_SECONDS * 1.5)

    medians = _bench._round_robin({"fast": fast, "slow": slow}, repeat=3, warmup=1)
    assert calls["slow"] == 1 + 1 + 3  # warm-up, the probe, one call per sample
    assert calls["fast"] > 2 + 3 * 10
    assert medians["slow"] >= _bench.MIN_SAMPLE_SECONDS * 1.5
    assert medians["fast"] < _bench.MIN_SAMPLE_SECONDS / 10


def test_demo_trains_every_backend_to_the_same_loss(capsys, tmp_path):
    plot = tmp_path / "demo.png"
    assert cli.main(["demo", "--quick", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "spiral" in out and "circle" in out and "The math §6" in out
    available = [n for n, b in gk.backends().items() if b["available"]]
    assert out.count("relative difference from numpy") == 2 * len(available)  # the others and the run by hand
    assert "x hand" in out
    assert "FAIL" not in out and out.rstrip().endswith("every run reached the same losses")
    assert plot.stat().st_size > 10_000


def test_demo_fails_when_a_backend_learns_differently(monkeypatch, capsys):
    others = [n for n, b in gk.backends().items() if b["available"] and n != "numpy"]
    if not others:
        pytest.skip("only the NumPy backend is available: nothing to compare")
    kernels = _backends.info(others[0]).kernels
    correct = kernels.sigmoid_backward

    def off_by_a_little(dx, dy, y):
        correct(dx, dy, y)
        dx *= 1.0001

    monkeypatch.setattr(kernels, "sigmoid_backward", off_by_a_little)
    assert cli.main(["demo", "--quick", "--backend", others[0]]) == 1
    out = capsys.readouterr().out
    assert f"final loss on {others[0]}" in out and "FAIL" in out


def test_bench_layers_times_the_steps_against_numpy_by_hand(tmp_path, capsys):
    out_file = tmp_path / "steps.json"
    argv = ["bench", "--layers", "--batch", "32", "--width", "64", "--activation", "relu", "--repeat", "1",
            "--warmup", "0", "--no-torch", "--json", str(out_file)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "gemms ms" in out and "default/1t" in out and "x numpy" in out
    result = json.loads(out_file.read_text())
    ours = [n for n, b in gk.backends().items() if b["available"] and n != "numpy"]
    assert [(r["step"], r["shape"]) for r in result["rows"]] == [
        ("layer", [32, 64]), ("mlp", [200, 64, 256, 256, 10]), ("mlp", [32, 3, 10, 6, 3])]  # the last: the seed network
    for row in result["rows"]:
        want = {"numpy", *ours, *(f"{n} 1t" for n in ours)} | ({"gemms"} if row["step"] == "layer" else set())
        assert set(row["seconds"]) == want
        assert all(s > 0 for s in row["seconds"].values())


@pytest.mark.parametrize("argv, message", [
    (["--layers", "--op", "relu"], "--op cannot be used with --layers (it times steps, not ops)"),
    (["--layers", "--size", "small", "--plot", "x.png"], "--size, --plot cannot be used with --layers"),
    (["--layers", "--dtype", "float32", "--dtype", "float64"], "--layers times one dtype: give --dtype once"),
    (["--batch", "32", "--activation", "relu"], "--batch, --activation only apply with --layers"),
    (["--torch-ops", "--layers", "--dtype", "float64"], "--layers, --dtype cannot be used with --torch-ops"),
    (["--no-fused"], "--no-fused only applies with --torch-ops"),
])
def test_bench_refuses_an_option_its_mode_would_ignore(capsys, argv, message):
    assert cli.main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err


def test_bench_torch_ops_times_gradkernels_torch_against_pytorch(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    from gradkernels import _torchbench

    # the shapes of every cell kind, small
    monkeypatch.setattr(_torchbench, "LARGE",
                        (("cross_entropy", (64, 50)), ("sigmoid", (64, 50)), ("linear", (64, 16, 8))))
    monkeypatch.setattr(_torchbench, "FUSED", ("linear_cross_entropy", (64, 16, 50)))
    out_file = tmp_path / "torch.json"
    assert cli.main(["bench", "--torch-ops", "--repeat", "1", "--warmup", "0", "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "x torch" in out and "over the API us" in out
    capability = torch.backends.cpu.get_cpu_capability()
    assert f"({capability} kernels)" in out
    written = json.loads(out_file.read_text())
    assert written["torch_cpu_capability"] == capability
    rows = written["rows"]
    assert [(r["function"], r["kind"]) for r in rows] == [
        ("cross_entropy", "forward + backward"), ("sigmoid", "forward + backward"), ("linear", "forward + backward"),
        ("linear_cross_entropy", "forward + backward"),
        ("cross_entropy", "forward, no grad"), ("linear_cross_entropy", "forward, no grad"),
        *((name, "forward") for name, _ in _torchbench.TINY)]
    assert all(s > 0 for r in rows for s in r["seconds"].values())
    assert set(rows[3]["peak_extra_bytes"]) == set(rows[5]["peak_extra_bytes"]) == {"gradkernels.torch", "torch"}
