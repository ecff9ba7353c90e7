"""Issue 10's library-side regressions: checks in the runs' dtype, traced invalid values, sizes estimated first."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdescent import _compat, datasets, gradient_descent, grid_search, network, sweep
from jaxdescent._validate import InvalidArgument
from jaxdescent.losses import sextic

LR = np.array([0.01, 0.1])
W0 = np.array([0.5, 1.9])


@pytest.mark.parametrize("bad, message", [
    (1e-300, "cannot be represented in float32"),   # would be 0 in the runs' float32
    (1e300, "cannot be represented in float32"),    # would be inf
    (True, "not a boolean"),
    (0.1 + 1j, "must be real"),
    (-0.1, "> 0"),
    (float("nan"), "finite"),
])
def test_learning_rate_checked_in_the_runs_dtype(bad, message):
    with pytest.raises(InvalidArgument, match=message):
        gradient_descent(sextic, 1.9, learning_rate=bad, num_steps=3)
    with pytest.raises(InvalidArgument, match=message):
        sweep(sextic, learning_rate=[0.1, bad], w0=W0, num_steps=3)


def test_boolean_arrays_and_float64_overflowing_starts_are_refused():
    with pytest.raises(InvalidArgument, match="boolean"):
        sweep(sextic, learning_rate=np.array([True, False]), w0=W0, num_steps=3)
    with pytest.raises(InvalidArgument, match="w0 .*cannot be represented"):
        gradient_descent(sextic, 1e39, learning_rate=0.1, num_steps=3)
    with pytest.raises(InvalidArgument, match="w0 .*cannot be represented"):
        sweep(sextic, learning_rate=LR, w0=np.array([0.5, 1e39]), num_steps=3)


def test_grad_tol_whose_square_underflows_is_refused():
    with pytest.raises(InvalidArgument, match="grad_tol"):
        sweep(sextic, learning_rate=LR, w0=W0, num_steps=3, grad_tol=1e-50)
    # the smallest accepted tolerance still means what it says: a tiny gradient is below it
    ok = sweep(sextic, learning_rate=LR, w0=W0, num_steps=3, grad_tol=1.1e-19)
    assert ok.converged_step.shape == (2, 2)


@pytest.mark.parametrize("optimizer", [None, functools.partial(optax.sgd, momentum=0.9), optax.adam])
def test_traced_invalid_learning_rate_makes_the_run_nan_never_plausible(optimizer):
    """No check can see a traced value; an invalid one turns the run into NaN, a valid one changes nothing."""
    one = jax.jit(lambda lr: gradient_descent(sextic, 1.9, learning_rate=lr, num_steps=5, optimizer=optimizer).w)
    for bad in (-0.01, 0.0, jnp.inf, jnp.nan):
        w = np.asarray(one(bad))
        assert w[0] == np.float32(1.9) and np.isnan(w[1:]).all(), (bad, w)
    np.testing.assert_array_equal(
        one(0.01), gradient_descent(sextic, 1.9, learning_rate=0.01, num_steps=5, optimizer=optimizer).w)

    many = jax.jit(lambda lr: sweep(sextic, learning_rate=lr, w0=W0, num_steps=5, optimizer=optimizer))
    r = many(jnp.array([-0.01, 0.01]))
    assert np.isnan(np.asarray(r.final_w[0])).all() and (np.asarray(r.diverged_step[0]) == 1).all()
    direct = sweep(sextic, learning_rate=np.array([0.01]), w0=W0, num_steps=5, optimizer=optimizer)
    np.testing.assert_array_equal(r.final_w[1], direct.final_w[0])


def test_network_targets_must_be_0_1_and_stop_when_solved_a_bool():
    x, y = datasets.xor()
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(InvalidArgument, match="0/1 targets"):
        network.train(jax.random.key(0), x, y * 0.5, optimizer=optax.sgd(0.1), n_hidden=2, num_steps=2)
    with pytest.raises(InvalidArgument, match="0/1 targets"):
        network.train_many(keys, x, y + 1, learning_rates=[0.1], n_hidden=2, num_steps=2)
    with pytest.raises(InvalidArgument, match="stop_when_solved"):
        network.train(jax.random.key(0), x, y, optimizer=optax.sgd(0.1), n_hidden=2, num_steps=2,
                      stop_when_solved="no")


def test_sizes_are_estimated_before_allocating():
    with _compat.enable_x64(True), pytest.raises(  # in float32, a step this small is refused as below its spacing
            InvalidArgument, match=r"grid_search: 4,000,000,001 grid points need about 192\.0 GB"):
        grid_search(sextic, -2.0, 2.0, 1e-9)
    # 10^6 runs recording every one of 2000 steps: 8 TB of history, refused before anything runs
    with pytest.raises(InvalidArgument, match="record less per run"):
        sweep(sextic, learning_rate=np.linspace(1e-3, 1e-2, 1000), w0=np.linspace(-1, 1, 1000),
              num_steps=2_000_000, record_every=1)
