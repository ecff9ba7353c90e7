import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxdescent import losses

floats = st.floats(-3, 3, allow_nan=False, width=32)


@settings(max_examples=50, deadline=None)
@given(floats)
def test_sextic_grad_matches_hand_derivative(w):
    w = np.float32(w)
    chex.assert_trees_all_close(jax.grad(losses.sextic)(w), losses.sextic_grad(w), rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(jax.grad(jax.grad(losses.sextic))(w), losses.sextic_hessian(w), rtol=1e-5, atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(floats)
def test_quadratic_grad_matches_hand_derivative(w):
    chex.assert_trees_all_close(jax.grad(losses.quadratic)(np.float32(w)), losses.quadratic_grad(np.float32(w)))


@settings(max_examples=50, deadline=None)
@given(floats, floats)
def test_two_dimensional_grads_match_hand_derivatives(w1, w2):
    w = jnp.array([w1, w2], jnp.float32)
    chex.assert_trees_all_close(jax.grad(losses.bowl)(w), losses.bowl_grad(w))
    chex.assert_trees_all_close(jax.grad(losses.himmelblau)(w), losses.himmelblau_grad(w), rtol=1e-5, atol=1e-4)


def test_losses_against_plain_python():
    for w in (-2.0, -0.5, 0.0, 0.75, 1.9):
        assert float(losses.sextic(w)) == pytest.approx(w**6 / 6 + w**2 / 2 - w, rel=1e-6, abs=1e-6)
        assert float(losses.quadratic(w)) == pytest.approx(w**2 + 2 * w + 3, rel=1e-6)
    assert float(losses.bowl(jnp.array([-8.0, 7.0]))) == 177.0
    assert float(losses.himmelblau(jnp.array([3.0, 2.0]))) == 0.0


def test_losses_compose_with_jit_and_vmap():
    w = jnp.linspace(-2, 2, 7)
    chex.assert_trees_all_close(jax.jit(jax.vmap(losses.sextic))(w), w**6 / 6 + w**2 / 2 - w, rtol=1e-6)
    ws = jnp.stack([w, -w], axis=1)
    chex.assert_trees_all_close(jax.vmap(jax.grad(losses.bowl))(ws), jax.vmap(losses.bowl_grad)(ws))
