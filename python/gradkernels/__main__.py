"""Command line: `python -m gradkernels demo`, `info`, `check`, `bench`, `tune` and `scale-demo`."""

import argparse
import importlib
import json
import importlib.metadata
import os
import pathlib
import platform
import sys

import numpy as np

from . import __version__, _backends, _bench, _demo, _selftest, _threads, _tuning


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _numba_target() -> str:
    """The CPU LLVM compiles the Numba kernels for, as Numba configures it."""
    try:
        import llvmlite.binding as llvm
        from numba.core import config
    except ImportError:
        return "not installed"
    name = config.CPU_NAME or llvm.get_host_cpu_name()
    return f"target {name}" + (f", features {config.CPU_FEATURES}" if config.CPU_FEATURES else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_features() -> str:
    try:
        ckernels = importlib.import_module("gradkernels._ckernels")
    except ImportError:
        return "unknown (the C extension is not built)"
    bits = ckernels.lib.gk_cpu_features()
    names = [name[len("GK_CPU_"):].lower() for name in dir(ckernels.lib) if name.startswith("GK_CPU_")
             and bits & getattr(ckernels.lib, name)]
    return " ".join(sorted(names)) or "none of those gradkernels knows"


def _c_variants() -> str:
    """The C build's ISA variants, which of them this CPU runs, and the one that runs."""
    try:
        from . import _cbackend
    except (ImportError, ValueError) as exc:
        return f"unavailable ({exc})"
    runs = ", ".join(f"{name}{'' if name in _cbackend.RUNNABLE else ' (not on this CPU)'}"
                     for name in _cbackend.VARIANTS)
    return f"{runs}; running {_cbackend.VARIANT}"


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        built = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # the layout of NumPy's build info differs between releases
        built = "unknown"
    try:
        import threadpoolctl
    except ImportError:
        return f"{built} (install threadpoolctl to see the kernel it runs)"
    pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
    running = ", ".join(f"{p.get('internal_api')} {p.get('version')} kernel {p.get('architecture')}, "
                        f"{p.get('num_threads')} threads" for p in pools)
    return f"{built}; running: {running or 'no BLAS loaded'}"


def info(_args) -> int:
    available = _backends.backends()
    lines = [
        ("gradkernels", __version__),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("cffi", _version("cffi")),
        ("numba", f"{_version('numba')} ({_numba_target()})"),
        ("torch", _version("torch")),
        ("platform", platform.platform()),
        ("cpu", _cpu_model()),
        ("cpu features", _cpu_features()),
        ("cores usable", str(_threads.MAX_THREADS)),
        ("threads", f"{_threads.get_num_threads()} (gradkernels.set_num_threads)"),
        ("openmp wait", _threads.openmp_wait()),
        ("blas", _blas()),
    ]
    lines.append(("c variants", _c_variants()))
    for var in ("GRADKERNELS_MAX_ISA", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS"):
        if var in os.environ:
            lines.append((var, os.environ[var]))
    chosen = _backends.get_backend()
    lines.append(("backend", f"{chosen} -> {_backends.resolve(chosen).name}"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    print()
    print(f"{'backend':<8} {'available':<10} {'version':<10} {'threads':<8} {'variant':<9} reason")
    for name, b in available.items():
        print(f"{name:<8} {'yes' if b['available'] else 'no':<10} {b['version'] or '-':<10} "
              f"{b['threads']:<8} {b['variant'] or '-':<9} {b['reason'] or ''}")
    return 0


def _fmt(ratio, is_reference=False) -> str:
    if ratio is None:
        return "ref" if is_reference else "-"
    return f"{ratio:.3g}"


def _backend_names(args) -> list[str]:
    """The backends named with --backend, else every available one; a backend asked for by name
    that is not available is an error, not a skip."""
    names = args.backend or [name for name, b in _backends.backends().items() if b["available"]]
    for name in names:
        _backends.resolve(name)
    return names


def _check_plotting(args) -> None:
    """Fails before a long run, not after it, when --plot cannot be drawn."""
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise RuntimeError('--plot needs matplotlib: pip install "gradkernels[bench]"') from None


def check(args) -> int:
    names = _backend_names(args)
    rows = _selftest.run(names, tuple(args.dtype or ("float32", "float64")), seed=args.seed)
    print("error / tolerance per op, backend and dtype (<= 1 passes); forward and backward against the")
    print("float64 NumPy reference, fd = backward against central finite differences (float64 only)")
    print()
    width = max(len(r.op) for r in rows)
    print(f"{'op':<{width}}  {'backend':<7}  {'dtype':<7}  {'forward':>8}  {'backward':>8}  {'fd':>8}  result")
    for r in rows:
        result = "ok" if r.ok else f"FAIL {r.note}".rstrip()
        print(f"{r.op:<{width}}  {r.backend:<7}  {r.dtype:<7}  {_fmt(r.forward, r.is_reference):>8}  "
              f"{_fmt(r.backward, r.is_reference):>8}  {_fmt(r.finite_differences):>8}  {result}")
    failed = sum(not r.ok for r in rows)
    print()
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _variant_line() -> str:
    c = _backends.backends()["c"]
    cap = os.environ.get("GRADKERNELS_MAX_ISA")
    return (f"c backend: the {c['variant']} variant" + (f" (GRADKERNELS_MAX_ISA={cap})" if cap else "")
            if c["available"] else f"c backend unavailable: {c['reason']}")


def bench(args) -> int:
    _refuse_options_of_the_other_mode(args)
    if args.layers:
        return bench_steps(args)
    if args.torch_ops:
        return bench_torch(args)
    names = _backend_names(args)
    if "numpy" not in names:
        names = ["numpy", *names]  # the baseline of every speedup
    if args.threads is not None:
        _threads.set_num_threads(args.threads)
    _check_plotting(args)
    result = _bench.run(args.op or _bench.OPS, args.size or _bench.SIZES, args.dtype or ["float32"], names,
                        repeat=args.repeat, warmup=args.warmup, with_torch=not args.no_torch,
                        with_auto=len(names) > 1)
    print(f"copy bandwidth (the limit): {result['copy_bandwidth_bytes_per_second'] / 1e9:.1f} GB/s, "
          f"64 MiB into a fresh array; {result['threads']} threads; median of {args.repeat} calls per entrant, "
          f"round-robin, fresh outputs")
    _report(args, result, _bench.table)
    if args.plot:
        _bench.plot(result, args.plot)
    return 0


def _report(args, result: dict, table) -> None:
    """The variant line and `table(result)` on stdout; the --json and --markdown files."""
    print(_variant_line())
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**result, "c_variant": _backends.backends()["c"]["variant"]}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table(result, markdown=True) + "\n")


def _refuse_options_of_the_other_mode(args) -> None:
    """bench times ops, or steps with --layers, or gradkernels.torch with --torch-ops: an option of
    another mode would be ignored."""
    if args.no_fused and not args.torch_ops:
        raise RuntimeError("--no-fused only applies with --torch-ops")
    if args.torch_ops:
        given = [flag for flag, value in (("--op", args.op), ("--size", args.size), ("--plot", args.plot),
                                          ("--layers", args.layers), ("--batch", args.batch), ("--width", args.width),
                                          ("--activation", args.activation), ("--dtype", args.dtype),
                                          ("--backend", args.backend), ("--no-torch", args.no_torch)) if value]
        if given:
            raise RuntimeError(f"{', '.join(given)} cannot be used with --torch-ops (it times gradkernels.torch "
                               f"against PyTorch, float32, on the backend in force)")
        return
    if args.layers:
        given = [flag for flag, value in (("--op", args.op), ("--size", args.size), ("--plot", args.plot)) if value]
        if given:
            raise RuntimeError(f"{', '.join(given)} cannot be used with --layers (it times steps, not ops)")
        if args.dtype and len(args.dtype) > 1:
            raise RuntimeError("--layers times one dtype: give --dtype once")
    else:
        given = [flag for flag, value in (("--batch", args.batch), ("--width", args.width),
                                          ("--activation", args.activation)) if value]
        if given:
            raise RuntimeError(f"{', '.join(given)} only apply with --layers")


def bench_steps(args) -> int:
    # Our own NumPy backend is not an entrant: the hand-written NumPy step is the baseline.
    names = [name for name in _backend_names(args) if name != "numpy"]
    if not names:
        raise RuntimeError("--layers times the numba and c backends, and neither is available here")
    if args.threads is not None:
        _threads.set_num_threads(args.threads)
    cells = _bench.step_cells(args.activation, args.batch, args.width)
    result = _bench.run_steps(cells, (args.dtype or ["float32"])[0], names, repeat=args.repeat, warmup=args.warmup,
                              with_torch=not args.no_torch)
    print(f"one training step (forward and backward) per call; {result['threads']} threads by default, "
          '"1t" = our kernels on one thread, as after gradkernels.set_num_threads(1) (BLAS keeps its threads); '
          f"median of {args.repeat} samples of consecutive steps per entrant, round-robin; gemms = the layer's "
          f"three GEMMs alone, in NumPy; {_threads.openmp_wait()}")
    _report(args, result, _bench.steps_table)
    return 0


def bench_torch(args) -> int:
    from . import _torchbench

    if args.threads is not None:
        _threads.set_num_threads(args.threads)
    result = _torchbench.run(repeat=args.repeat, warmup=args.warmup, fused=not args.no_fused)
    print(f"gradkernels.torch (backend {_backends.get_backend()}) against PyTorch {result['torch']} "
          f"({result['torch_cpu_capability']} kernels), float32, "
          f"{result['threads']} threads for both; median of {args.repeat} samples per entrant, round-robin; "
          f"peak extra memory: resident memory at the call's peak over before it")
    _report(args, result, _torchbench.table)
    return 0


def tune(args) -> int:
    names = [name for name, b in _backends.backends().items() if b["available"]]
    result = _bench.run(args.op or _bench.OPS, args.size or _bench.SIZES, args.dtype or ["float32", "float64"],
                        names, repeat=args.repeat, warmup=args.warmup, with_torch=False, with_auto=False)
    path = pathlib.Path(args.output) if args.output else _tuning.table_path()
    found = _tuning.tune(result, path)
    print(_variant_line())
    print(_bench.table(result))
    print()
    counts = {name: list(found.values()).count(name) for name in names}
    print(f"wrote {path}: " + ", ".join(f"{name} fastest in {n}" for name, n in counts.items()))
    return 0


def demo(args) -> int:
    names = _backend_names(args)
    _check_plotting(args)
    return _demo.run(names, quick=args.quick, seed=args.seed, plot_path=args.plot)


def scale_demo(args) -> int:
    from . import _scaleout

    return _scaleout.run(args.rows, args.features, args.classes, args.workers, args.iterations, args.rate, args.seed,
                         args.backend)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradkernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train small networks on every backend; non-zero exit if they disagree")
    p.add_argument("--quick", action="store_true", help="fewer points and epochs (well under 30 s)")
    p.add_argument("--backend", action="append", choices=_backends.NAMES, help="only this backend (repeatable; "
                   "numpy, the reference, always runs)")
    p.add_argument("--seed", type=int, default=0, help="seed for the data, the weights and the shuffles (default 0)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the loss curves and the time per epoch (needs matplotlib)")
    p.set_defaults(run=demo)
    sub.add_parser("info", help="versions, backends, threads and CPU features").set_defaults(run=info)
    p = sub.add_parser("check", help="self-test every op x backend x dtype; non-zero exit on any failure")
    p.add_argument("--backend", action="append", choices=_backends.NAMES, help="only this backend (repeatable)")
    p.add_argument("--dtype", action="append", choices=("float32", "float64"), help="only this dtype (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs (default 0)")
    p.set_defaults(run=check)
    p = sub.add_parser("bench", help="time every op on every backend (and PyTorch) side by side")
    p.add_argument("--op", action="append", choices=_bench.OPS, help="only this op (repeatable)")
    p.add_argument("--size", action="append", choices=_bench.SIZES, help="only this size class (repeatable)")
    p.add_argument("--dtype", action="append", choices=("float32", "float64"), help="dtype (repeatable; float32)")
    p.add_argument("--backend", action="append", choices=_backends.NAMES, help="only this backend (repeatable)")
    p.add_argument("--threads", type=int, help="threads for the parallel backends (default: all usable cores)")
    p.add_argument("--repeat", type=int, default=11, help="timed calls per entrant (default 11)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per entrant first (default 3)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    p.add_argument("--json", metavar="FILE", help="also write the measurements to FILE as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the speedups over NumPy (needs matplotlib)")
    p.add_argument("--markdown", metavar="FILE", help="also write the table to FILE as Markdown (for the README)")
    p.add_argument("--layers", action="store_true", help="time training steps instead of ops: a hidden layer's "
                   "forward and backward (batch x width x activation) and an MLP, against NumPy by hand and PyTorch")
    p.add_argument("--batch", action="append", type=int, help="with --layers: only this batch size (repeatable)")
    p.add_argument("--width", action="append", type=int, help="with --layers: only this layer width (repeatable)")
    p.add_argument("--activation", action="append", choices=("relu", "sigmoid", "tanh"),
                   help="with --layers: only this activation (repeatable)")
    p.add_argument("--torch-ops", action="store_true", help="time gradkernels.torch against plain PyTorch: "
                   "forward + backward at large sizes, the fused linear + cross-entropy's memory, the cost per call")
    p.add_argument("--no-fused", action="store_true", help="with --torch-ops: leave out the fused linear + "
                   "cross-entropy at (8192, 1024) -> 32000 classes (about a minute)")
    p.set_defaults(run=bench)
    p = sub.add_parser("tune", help='measure the fastest backend per op, dtype and size for "auto" on this machine')
    p.add_argument("--op", action="append", choices=_bench.OPS, help="only this op (repeatable)")
    p.add_argument("--size", action="append", choices=_bench.SIZES, help="only this size class (repeatable)")
    p.add_argument("--dtype", action="append", choices=("float32", "float64"), help="dtype (repeatable; both)")
    p.add_argument("--repeat", type=int, default=7, help="timed calls per backend (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per backend first (default 2)")
    p.add_argument("--output", metavar="FILE", help="write the table to FILE instead of this machine's cache "
                   "(the package's shipped table is python/gradkernels/tuned.json)")
    p.set_defaults(run=tune)
    p = sub.add_parser("scale-demo", help="full-batch gradient descent with gradkernels.dask on a local cluster, "
                       "against the same descent in memory (needs the dask extra); non-zero exit if they disagree")
    p.add_argument("--rows", type=int, default=5_000_000, help="rows of the dataset (default 5,000,000)")
    p.add_argument("--features", type=int, default=32, help="features (default 32: X is 1.2 GiB)")
    p.add_argument("--classes", type=int, default=4, help="classes of the softmax regression (default 4)")
    p.add_argument("--workers", type=int, default=2, help="worker processes, one thread each (default 2)")
    p.add_argument("--iterations", type=int, default=20, help="gradient steps per model (default 20)")
    p.add_argument("--rate", type=float, default=1.0, help="learning rate (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    p.add_argument("--backend", default="auto", choices=_backends.NAMES + ("auto",), help="backend (default auto)")
    p.set_defaults(run=scale_demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except RuntimeError as exc:  # e.g. an unavailable backend named on the command line
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
