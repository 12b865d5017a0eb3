"""gradkernels: CPU forward/backward kernels for neural-network training, NumPy in, NumPy out.

Every op validates its arguments once and runs on the backend in force ("auto" by default):
see `backends()`, `set_backend()`, `use_backend()` and `backend()`. Results are fresh arrays,
or written into `out=` when given; inputs are never modified unless passed as `out`.
"""

from ._backends import backends, get_backend, set_backend, use_backend
from ._dispatch import Backend, backend, public_ops
from ._gradcheck import GradcheckError, GradcheckReport, gradcheck
from . import _ops
from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

globals().update(public_ops())

__all__ = [
    *_ops.OPS,  # every op, in the order _ops declares them
    "Backend",
    "backend",
    "backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "get_num_threads",
    "set_num_threads",
    "gradcheck",
    "GradcheckError",
    "GradcheckReport",
]
