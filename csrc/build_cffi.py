"""cffi build script for the C extension `gradkernels._ckernels` (API, out-of-line mode).

setup.py names `ffibuilder` in `cffi_modules`, so `pip install .` compiles it. The cdef is the
real header with its preprocessor lines dropped, so no declaration is written twice.

Build options, from the environment of `pip install`:
- GRADKERNELS_NATIVE=1: compile for this machine's CPU only (-march=native, no runtime dispatch).
- GRADKERNELS_SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer, any finding fatal, and
  warnings as errors (what .ci/run builds; load it with libasan preloaded).
OpenMP is used when the compiler has it; without it the kernels run on one thread and
`gk_openmp()` says so.
"""

import os
import pathlib
import subprocess
import sys
import sysconfig
import tempfile

from cffi import FFI

CSRC = pathlib.Path(__file__).resolve().parent
HEADER = CSRC / "gradkernels.h"
SOURCES = sorted(CSRC.glob("*.c"))

# No -ffast-math (it would break NaN and Inf); -fno-math-errno only lets fma()/fabs() inline,
# since no kernel reads errno. -fopenmp-simd honours `omp simd` even without OpenMP.
FLAGS = ["-std=c99", "-O3", "-fno-math-errno", "-fopenmp-simd", "-Wall", "-Wextra", "-Wdouble-promotion"]
# Where a kernel runs on AVX-512, let it use 512-bit vectors (GCC's tuning prefers 256).
X86_FLAGS = ["-mprefer-vector-width=512"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-Werror"]


def _cdef_from_header(path: pathlib.Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def _compiler() -> list[str]:
    return (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()


def _compiles(flags: list[str], source: str) -> bool:
    """Whether the compiler builds and links `source` with `flags`."""
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "probe.c"
        src.write_text(source)
        try:
            result = subprocess.run(
                _compiler() + flags + [str(src), "-o", str(pathlib.Path(tmp) / "probe")],
                capture_output=True,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0


def _flags() -> tuple[list[str], list[str]]:
    compile_args, link_args = list(FLAGS), []
    if os.environ.get("GRADKERNELS_NATIVE") == "1":
        compile_args += ["-march=native", "-DGK_NATIVE"]
    if _compiles(["-mprefer-vector-width=512"], "int main(void) { return 0; }\n"):
        compile_args += X86_FLAGS
    if _compiles(["-fopenmp"], "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:
        print("gradkernels: the C compiler has no OpenMP; the C kernels will run on one thread", file=sys.stderr)
    if os.environ.get("GRADKERNELS_SANITIZE") == "1":
        compile_args += SANITIZE
        link_args += SANITIZE[:1]
    return compile_args, link_args


compile_args, link_args = _flags()
ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(HEADER))
ffibuilder.set_source(
    "gradkernels._ckernels",
    '#include "gradkernels.h"',
    sources=[str(p.relative_to(CSRC.parent)) for p in SOURCES],
    include_dirs=[str(CSRC.relative_to(CSRC.parent))],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
