"""Build glue that pyproject.toml cannot express: the package directory mapping and the cffi build.

`cffi_modules` makes `pip install .` compile the C extension `gradkernels._ckernels` from csrc/.
"""

from setuptools import setup

setup(
    package_dir={"": "python"},
    packages=["gradkernels", "gradkernels.reference"],
    cffi_modules=["csrc/build_cffi.py:ffibuilder"],
)
