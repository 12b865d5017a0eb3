"""cffi build script for the C extension `gradkernels._ckernels` (API, out-of-line mode).

setup.py names `ffibuilder` in `cffi_modules`, so `pip install .` compiles it. The cdef is the
real header with its preprocessor lines dropped, so no declaration is written twice.

The kernel sources are compiled once per ISA variant (X86_VARIANTS): this script writes one
translation unit per variant into build/variants/, a `#pragma GCC target` followed by every kernel
family's source, and the cdef declares each kernel once per variant, its name suffixed with the
variant's (gk_relu_forward_f32_avx2). `gk_variants()` tells the Python package which variants the
build has and the x86-64 level each needs; the package picks one per process (gradkernels._cbackend).
GCC's target_clones would pick at load time and could not be steered, nor keep FMA out of the
baseline variant (its preprocessor sees one target).

Build options, from the environment of `pip install`:
- GRADKERNELS_NATIVE=1: compile for this machine's CPU only (-march=native, one variant "native").
- GRADKERNELS_SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer, any finding fatal, and
  warnings as errors (what .ci/run builds; load it with libasan preloaded).
OpenMP is used when the compiler has it; without it the kernels run on one thread and
`gk_openmp()` says so.
"""

import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import tempfile

from cffi import FFI

CSRC = pathlib.Path(__file__).resolve().parent
ROOT = CSRC.parent
HEADER = CSRC / "gradkernels.h"
# cpu.c is compiled once, for the baseline; every other source is a kernel family.
CPU_SOURCE = CSRC / "cpu.c"
FAMILY_SOURCES = sorted(p for p in CSRC.glob("*.c") if p != CPU_SOURCE)
VARIANT_DIR = ROOT / "build" / "variants"

# The variants of an x86-64 build with GCC >= 12, best first: name -> (its `#pragma GCC target`,
# the x86-64 level, as gk_cpu_level() reports it, that a CPU needs to run it). AVX-512 code may use
# 512-bit vectors (GCC's tuning prefers 256).
X86_VARIANTS = {
    "avx512": ("arch=x86-64-v4,prefer-vector-width=512", 4),
    "avx2": ("arch=x86-64-v3", 3),
    "baseline": ("arch=x86-64", 1),
}
# Elsewhere (another architecture or compiler, or a native build) a single variant, no pragma.
SINGLE_VARIANTS = {"baseline": (None, 0), "native": (None, 0)}

# No -ffast-math (it would break NaN and Inf). -fno-math-errno lets fma()/fabs() inline, since no
# kernel reads errno. -fno-trapping-math lets a loop whose elements take either side of a select
# (x > 0 ? x : a x, exp's range limits) run both sides in every lane and blend: without it GCC
# keeps a floating-point operation that may raise an exception flag from running where the
# source would not, which only AVX-512's masked instructions satisfy, and the AVX2 and baseline
# variants stayed scalar. No kernel reads the flags, and NumPy clears them before its own
# checks; results, NaN and Inf included, are the same IEEE values. -fopenmp-simd honours `omp
# simd` even without OpenMP.
FLAGS = ["-std=c99", "-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-Wall", "-Wextra",
         "-Wdouble-promotion"]
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


def _variants() -> dict[str, tuple[str | None, int]]:
    """The variants this compiler and machine build."""
    if os.environ.get("GRADKERNELS_NATIVE") == "1":
        return {"native": SINGLE_VARIANTS["native"]}
    # A compiler that does not know a target (or the pragma) fails this under -Werror.
    probe = "".join(f'#pragma GCC push_options\n#pragma GCC target("{target}")\n'
                    f'int probe_{name}(void) {{ return 0; }}\n#pragma GCC pop_options\n'
                    for name, (target, _) in X86_VARIANTS.items())
    if _compiles(["-Werror"], probe + "int main(void) { return 0; }\n"):
        return dict(X86_VARIANTS)
    return {"baseline": SINGLE_VARIANTS["baseline"]}


def variant_unit(name: str, target: str | None) -> str:
    """The translation unit of one variant: its target, its suffix, every kernel family."""
    lines = [f"/* Written by csrc/build_cffi.py: the kernels of the {name} variant. */"]
    if target:
        lines.append(f'#pragma GCC target("{target}")')
    lines.append(f"#define GK_VARIANT _{name}")
    lines += [f'#include "{source.name}"' for source in FAMILY_SOURCES]
    return "\n".join(lines) + "\n"


def _write_units(variants) -> list[pathlib.Path]:
    VARIANT_DIR.mkdir(parents=True, exist_ok=True)
    units = []
    for name, (target, _) in variants.items():
        unit = VARIANT_DIR / f"{name}.c"
        text = variant_unit(name, target)
        if not unit.exists() or unit.read_text() != text:  # an unchanged unit keeps its object
            unit.write_text(text)
        units.append(unit)
    return units


# A kernel's declaration in the header: its name (with the type suffix) and its parameters.
KERNEL_DECLARATION = re.compile(r"^int (gk_\w+_f(?:32|64))(\(.*?\);)", re.S | re.M)


def _per_variant(declaration: re.Match, variants) -> str:
    return "\n".join(f"int {declaration[1]}_{name}{declaration[2]}" for name in variants)


def _cdef(variants) -> str:
    """The header as cffi reads it, each kernel declared once per variant, and gk_variants()."""
    text = KERNEL_DECLARATION.sub(lambda m: _per_variant(m, variants), _cdef_from_header(HEADER))
    return text + "\nconst char *gk_variants(void);\n"


def _source(variants) -> str:
    """The C of the wrapper module: the header, the prototypes of the variants' kernels it calls,
    and gk_variants(), "name=level name=level ..." best first."""
    prototypes = "\n".join(_per_variant(m, variants) for m in KERNEL_DECLARATION.finditer(HEADER.read_text()))
    listing = " ".join(f"{name}={level}" for name, (_, level) in variants.items())
    return (f'#include "gradkernels.h"\n{prototypes}\n'
            f'static const char *gk_variants(void) {{ return "{listing}"; }}\n')


def _flags() -> tuple[list[str], list[str]]:
    compile_args, link_args = list(FLAGS), []
    if os.environ.get("GRADKERNELS_NATIVE") == "1":
        compile_args.append("-march=native")
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
variants = _variants()
ffibuilder = FFI()
ffibuilder.cdef(_cdef(variants))
ffibuilder.set_source(
    "gradkernels._ckernels",
    _source(variants),
    sources=[str(p.relative_to(ROOT)) for p in [CPU_SOURCE, *_write_units(variants)]],
    include_dirs=[str(CSRC.relative_to(ROOT))],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
