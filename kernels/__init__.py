"""The Numba backend: every kernel declared in gradkernels._catalog, each in its family's module
(activations, softmax, losses, linear), under the name the catalog gives it.

Importing this package compiles nothing: each kernel compiles (or loads from Numba's cache) on
its first call, for the dtypes it is called with.
"""
