"""Build glue that pyproject.toml cannot express: the package directory mapping and the cffi build.

python/gradkernels is the package `gradkernels`; kernels/ (the Numba kernels) is its subpackage
`gradkernels.kernels`, so the wheel is self-contained.
`cffi_modules` makes `pip install .` compile the C extension `gradkernels._ckernels` from csrc/.
That build is optional: without a working C compiler the install still succeeds, and
`gradkernels.backends()` reports the C backend unavailable with the reason.
"""

import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError


class OptionalBuildExt(build_ext):
    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError, OSError) as exc:  # no compiler, or it failed
            print(f"gradkernels: the C backend was not built ({type(exc).__name__}: {exc})", file=sys.stderr)


setup(
    package_dir={"gradkernels": "python/gradkernels", "gradkernels.kernels": "kernels"},
    packages=["gradkernels", "gradkernels.reference", "gradkernels.kernels"],
    package_data={"gradkernels": ["tuned.json"]},  # the table "auto" follows until `tune` writes one
    cffi_modules=["csrc/build_cffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
