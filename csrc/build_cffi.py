"""cffi build script for the C extension `gradkernels._ckernels` (API, out-of-line mode).

setup.py names `ffibuilder` in `cffi_modules`, so `pip install .` compiles it. The cdef is the
real header with its preprocessor lines dropped, so no declaration is written twice.
"""

import pathlib

from cffi import FFI

CSRC = pathlib.Path(__file__).resolve().parent
HEADER = CSRC / "gradkernels.h"
SOURCES = sorted(CSRC.glob("*.c"))


def _cdef_from_header(path: pathlib.Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(HEADER))
ffibuilder.set_source(
    "gradkernels._ckernels",
    '#include "gradkernels.h"',
    sources=[str(p.relative_to(CSRC.parent)) for p in SOURCES],
    include_dirs=[str(CSRC.relative_to(CSRC.parent))],
    extra_compile_args=["-std=c99", "-O3", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
