"""The math §6 (README): the worked example every backend must reproduce."""

import numpy as np

from gradkernels._selftest import worked_example


def test_worked_example(bk):
    got = worked_example(bk)
    np.testing.assert_allclose(got["y_hat"], [0.05674909, 0.05714823, 0.05722316], rtol=0, atol=5e-9)
    np.testing.assert_allclose(got["L"], 281.70005118, rtol=0, atol=5e-9)
    np.testing.assert_allclose(got["dL/dv"], [-57.65775904, -30.38817107, -30.14025049, -30.04098558], rtol=0, atol=5e-9)
    np.testing.assert_allclose(
        got["dL/dW"],
        [[-0.287435, -0.43153148, -0.57553703], [-0.3865626, -0.58037153, -0.77389626], [-0.68390552, -1.02679606, -1.3695813]],
        rtol=0, atol=5e-9,
    )
