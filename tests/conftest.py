"""Strict JAX for the tests: implicit rank promotion is an error, so broadcasting mistakes fail loudly.

The command's compilation cache is off for the tests (its processes, including those the tests start,
inherit this): a test run does not write to the user's ~/.cache. tests/test_cache.py turns it on in
folders of its own.
"""

import os

import jax

os.environ.setdefault("JAXDESCENT_COMPILATION_CACHE", "0")
jax.config.update("jax_numpy_rank_promotion", "raise")
