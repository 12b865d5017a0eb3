"""Build glue that pyproject.toml cannot express: the package directory mapping and the cffi build.

python/gradkernels is the package `gradkernels`; kernels/ (the Numba kernels) is its subpackage
`gradkernels.kernels`, so the wheel is self-contained.
`cffi_modules` makes `pip install .` compile the C extension `gradkernels._ckernels` from csrc/.
"""

from setuptools import setup

setup(
    package_dir={"gradkernels": "python/gradkernels", "gradkernels.kernels": "kernels"},
    packages=["gradkernels", "gradkernels.reference", "gradkernels.kernels"],
    cffi_modules=["csrc/build_cffi.py:ffibuilder"],
)
