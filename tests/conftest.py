"""Strict JAX for the tests: implicit rank promotion is an error, so broadcasting mistakes fail loudly."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
