import hypothesis
import numpy as np
import pytest

import gradkernels as gk

hypothesis.settings.register_profile("default", deadline=None, max_examples=40, derandomize=True)
hypothesis.settings.load_profile("default")

AVAILABLE_BACKENDS = [name for name, info in gk.backends().items() if info["available"]]


@pytest.fixture(params=AVAILABLE_BACKENDS)
def bk(request):
    """The ops bound to each available backend in turn: the whole suite runs once per backend."""
    return gk.backend(request.param)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
