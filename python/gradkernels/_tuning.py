"""What "auto" runs each op on: per op, dtype and size class, the backend that
`python -m gradkernels tune` measured fastest on this machine, from a table kept in the user's
cache directory under the package version and the CPU. Without one, the shipped table (SHIPPED,
measured by `tune --output` on the machines the README's Performance section names) stands in;
for a case neither holds, or whose backend is not available, the first available of
AUTO_PREFERENCE. Each file holds one table per ISA variant of the C backend (the C kernels' speed
against Numba's depends on it), and "auto" follows the one of the variant that runs.
"""

import hashlib
import json
import os
import pathlib
import platform
import threading

import numpy as np

from . import _backends, _threads

# Size classes by the element count of an op's first array: tiny below SMALL (the seed networks'
# arrays, where a call's fixed cost decides), small below MEDIUM, large from LARGE on. The bench's
# shapes fall one in each (_bench.SIZES). Powers of two, so that the sizes of one bit length share
# a class: the dispatch remembers its choice per bit length.
SMALL, MEDIUM, LARGE = 1 << 12, 1 << 17, 1 << 22

SHIPPED = pathlib.Path(__file__).with_name("tuned.json")


def size_class(elements: int) -> str:
    if elements < MEDIUM:
        return "tiny" if elements < SMALL else "small"
    return "medium" if elements < LARGE else "large"


# Counts the times the table was dropped (see `forget`), so that what is derived from it can tell
# that it is stale.
generation = 0


def _cpu_identity() -> str:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    features = ""
    try:
        from ._ckernels import lib

        features = str(lib.gk_cpu_features())
    except ImportError:
        pass
    return f"{platform.machine()} {model} {features} {_threads.MAX_THREADS} cores"


def table_path() -> pathlib.Path:
    """Where `tune` writes and "auto" reads: one file per package version and CPU."""
    from . import __version__

    base = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    cpu = hashlib.sha256(_cpu_identity().encode()).hexdigest()[:12]
    return base / "gradkernels" / f"tune-{__version__}-{cpu}.json"


def key(op: str, dtype: str, size: str) -> str:
    return f"{op}/{dtype}/{size}"


# (op, dtype, size class) -> backend name: the tuned table, less the backends not available here.
_table: dict[tuple[str, np.dtype, str], str] | None = None
_table_lock = threading.Lock()


def variant() -> str:
    """The table's key: the C backend's variant in force ("none" without the C backend)."""
    return _backends.info("c").variant or "none"


def _tables(path: pathlib.Path) -> dict:
    try:
        tables = json.loads(path.read_text())["tables"]
        return tables if isinstance(tables, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):  # none, or not one we wrote
        return {}


def _read(path: pathlib.Path) -> dict[tuple[str, np.dtype, str], str]:
    tables = _tables(path)
    key = variant()
    if key == "none" and key not in tables:  # without C, any table's choices among numba and numpy
        key = next(iter(tables), key)
    try:
        entries = [(k.split("/"), name) for k, name in tables[key]["table"].items()]
        return {(op, np.dtype(dtype), size): name for (op, dtype, size), name in entries
                if name in _backends.NAMES and _backends.info(name).available}
    except (KeyError, ValueError, TypeError, AttributeError):  # no table for this variant, or not ours
        return {}


def _load() -> dict[tuple[str, np.dtype, str], str]:
    return _read(table_path()) or _read(SHIPPED)


def table() -> dict[tuple[str, np.dtype, str], str]:
    """The table "auto" follows: this machine's, else the shipped one ({} when neither can be read),
    loaded once per process."""
    global _table
    if _table is None:
        with _table_lock:
            if _table is None:
                _table = _load()
    return _table


def forget() -> None:
    """Read the table again on next use (after `tune` wrote a new one)."""
    global _table, generation
    with _table_lock:
        _table = None
        generation += 1


def choose(op: str, first) -> str:
    """The backend name "auto" stands for in a call of `op` whose first argument is `first` ("auto"
    itself where the table has no entry)."""
    if isinstance(first, np.ndarray):
        return table().get((op, first.dtype, size_class(first.size)), "auto")
    return "auto"


# A backend earlier in AUTO_PREFERENCE keeps a case unless another is faster by more than this
# factor: closer than that, two runs on a shared machine disagree about which is faster.
MARGIN = 1.05


def choice(seconds: dict[str, float]) -> str:
    """The backend to run, given each available backend's median seconds for a case: the first of
    AUTO_PREFERENCE within MARGIN of the fastest."""
    fastest = min(seconds.values())
    ranked = [name for name in _backends.AUTO_PREFERENCE if name in seconds]
    return next(name for name in ranked if seconds[name] <= MARGIN * fastest)


def tune(result: dict, path: pathlib.Path | None = None) -> dict[str, str]:
    """Writes the backend to run per row of a bench result (`_bench.run`; see `choice`) into
    `path` (this machine's file by default), in the table of the C variant in force: its rows for
    other cases, and the other variants' tables, stay. Returns the rows it measured."""
    found = {key(row["op"], row["dtype"], row["size"]): choice({name: s for name, s in row["seconds"].items()
                                                                 if name in _backends.NAMES})
             for row in result["rows"]}
    path = path or table_path()
    tables = _tables(path)
    kept = tables.get(variant(), {}).get("table", {})
    tables[variant()] = {"cpu": _cpu_identity(), "table": {**(kept if isinstance(kept, dict) else {}), **found}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tables": tables}, indent=1, sort_keys=True) + "\n")
    forget()
    return found
