"""The lecture's step network, trained through a straight-through estimator (STE).

The lecture's network is::

    H_in = X W₁,  H_out = step(H_in),  O_in = H_out W₂,  O_out = step(O_in)
    MSE  = (1/N) Σₑ Σₙ (O_out[e, n] − Y[e, n])²

and it leaves ∂MSE/∂W₁ and ∂MSE/∂W₂ as "?". The exact answer is zero almost
everywhere (the step is flat wherever it is differentiable), so gradient
descent cannot move. :func:`step` keeps the exact Heaviside forward pass and
replaces only its backward pass by a surrogate derivative, which makes the
network learn.

Bias: the lecture's products have no bias term. Here a constant-1 column is
appended to ``X`` and a constant-1 unit to ``H_out`` inside :func:`forward`,
so ``W₁`` has ``n_in + 1`` rows and ``W₂`` has ``n_hidden + 1`` rows; their
last rows are the biases. Callers pass ``X`` with its own ``n_in`` features.

:func:`train` runs a whole training as one ``lax.scan`` and is a pure function
of its key, so :func:`train_many` runs a grid of keys × learning rates as one
compiled program.
"""

import functools
import math
import numbers
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxdescent import _engine, _validate
from jaxdescent._engine import Static
from jaxdescent.descent import check_optimizer, check_transformation, descend, make_optimizer

ESTIMATORS = (None, "identity", "clipped", "sigmoid")
"""The backward passes :func:`step` knows: ``None`` is the true (zero) derivative."""


def _check_ste(ste, name: str = "ste") -> None:
    if not (ste is None or (isinstance(ste, str) and ste in ESTIMATORS)):
        raise ValueError(f"{name} must be one of {ESTIMATORS}, got {ste!r}")


DEFAULT_SLOPE = 1.0
"""The sigmoid estimator's slope when none is given (the default of every ``slope=`` here)."""


def _check_slope(slope, name: str = "slope") -> None:
    if isinstance(slope, (bool, np.bool_)) or getattr(slope, "dtype", None) == np.dtype(bool):
        raise _validate.InvalidArgument(f"{name} must be a number, not a boolean: got {slope!r}")
    if _validate.is_traced(slope):
        return
    try:
        a = np.asarray(slope, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {slope!r}") from None
    if a.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    if not np.isfinite(a) or a <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {slope!r}")


def _heaviside(x):
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _step(ste, x, slope):
    return _heaviside(x)


def _step_fwd(ste, x, slope):
    return _heaviside(x), (x, slope)


def _step_bwd(ste, residuals, g):
    x, slope = residuals
    if ste is None:
        dx = jnp.zeros_like(g)
    elif ste == "identity":
        dx = g
    elif ste == "clipped":
        dx = jnp.where(jnp.abs(x) <= 1, g, jnp.zeros_like(g))
    else:  # "sigmoid"
        z = slope * x
        # σ(z)σ(−z) rather than σ(z)(1 − σ(z)): 1 − σ(z) cancels to 0 in float32 for z > ~17.
        dx = g * (slope * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z))
    return dx, jnp.zeros_like(slope)


_step.defvjp(_step_fwd, _step_bwd)


def step(x: ArrayLike, ste: Optional[str] = "identity", *, slope: ArrayLike = 1.0) -> jax.Array:
    """The Heaviside step, 1 where ``x > 0`` else 0, with a chosen backward pass.

    The forward value is exact for every normal ``x`` (also huge ones and
    ±inf): ``step(jnp.finfo(jnp.float32).tiny)`` is 1. Subnormal inputs may be
    flushed to zero by XLA (they are on CPU), so ``step(x)`` is 0 for
    0 < x < the smallest normal float of ``x``'s dtype (about 1.2e-38 in
    float32). Only the derivative used by ``jax.grad`` depends on ``ste``:

    - ``None``: the true derivative of the step, exactly zero everywhere.
    - ``"identity"``: straight through, d step/dx := 1.
    - ``"clipped"``: 1 where ``|x| <= 1`` else 0 (Larq's ``SteHeaviside``).
    - ``"sigmoid"``: the derivative of σ(slope·x), slope·σ(slope·x)(1 − σ(slope·x)).

    Args:
      x: pre-activations, any shape, real floats.
      ste: the estimator, one of :data:`ESTIMATORS`.
      slope: the sigmoid surrogate's slope (> 0; used only by ``"sigmoid"``).
        It may be traced, so sweeping it does not recompile.

    Returns:
      An array shaped like ``x`` holding 0.0 and 1.0.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxdescent.network import step
      >>> step(jnp.array([-2.0, 0.0, 0.5, 1e30]))
      Array([0., 0., 1., 1.], dtype=float32)
      >>> jax.grad(lambda x: step(x, "clipped").sum())(jnp.array([-2.0, 0.5]))
      Array([0., 1.], dtype=float32)
      >>> jax.grad(lambda x: step(x, None).sum())(jnp.array([-2.0, 0.5]))
      Array([0., 0.], dtype=float32)
    """
    _check_ste(ste)
    _check_slope(slope)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return _step(ste, x, jnp.asarray(slope, x.dtype))


class Params(NamedTuple):
    """The network's weights; the last row of each matrix is its bias.

    Attributes:
      w1: shape ``(n_in + 1, n_hidden)``: input (and constant 1) to hidden.
      w2: shape ``(n_hidden + 1, n_out)``: hidden (and constant 1) to output.
    """

    w1: jax.Array
    w2: jax.Array


class History(NamedTuple):
    """What :func:`train` records; ``loss``, ``accuracy`` and ``exact`` have ``num_steps + 1`` entries.

    Entry ``t`` describes the parameters after ``t`` updates (entry 0 the
    initial net, the last one the returned net), measured on the training data.

    Attributes:
      loss: the lecture's MSE of the step network (exact forward pass).
      accuracy: the fraction of examples whose :func:`predict` class is right.
      exact: the fraction of examples whose ``O_out`` row equals ``Y`` exactly.
      solved_step: the first ``t`` with ``exact == 1`` (the whole training set
        solved), or ``-1`` if it never was. Adam can un-solve a solved net, so
        this records the first time, not the last.
    """

    loss: jax.Array
    accuracy: jax.Array
    exact: jax.Array
    solved_step: jax.Array


def init_params(key: jax.Array, n_in: int, n_hidden: int, n_out: int) -> Params:
    """Random weights: each column normal with standard deviation 1/√(fan-in), biases included.

    Args:
      key: a ``jax.random`` key.
      n_in: the data's own number of features (the bias input is added here).
      n_hidden: hidden units (the constant-1 bias unit is added here).
      n_out: outputs.

    Returns:
      :class:`Params` with ``w1`` of shape ``(n_in + 1, n_hidden)`` and ``w2``
      of shape ``(n_hidden + 1, n_out)``.

    Examples:
      >>> import jax
      >>> from jaxdescent.network import init_params
      >>> p = init_params(jax.random.key(0), 2, 4, 1)
      >>> p.w1.shape, p.w2.shape
      ((3, 4), (5, 1))
    """
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        _positive_int(value, name)
    return _init(key, n_in, n_hidden, n_out)


def _init(key, n_in, n_hidden, n_out):
    # One draw for both matrices, not split(key) and two draws: XLA's CPU compile
    # of two threefry streams took ~1.5 s of the ~2 s it took to compile train.
    n1, n2 = (n_in + 1) * n_hidden, (n_hidden + 1) * n_out
    z = jax.random.normal(key, (n1 + n2,))
    w1 = z[:n1].reshape(n_in + 1, n_hidden) / np.sqrt(n_in + 1)
    w2 = z[n1:].reshape(n_hidden + 1, n_out) / np.sqrt(n_hidden + 1)
    return Params(w1, w2)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _with_ones(a):
    return jnp.concatenate([a, jnp.ones(a.shape[:-1] + (1,), a.dtype)], axis=-1)


def _layers(params, x1, ste, slope):
    """O_in and O_out from inputs that already carry the constant-1 column."""
    h_out = _step(ste, x1 @ params.w1, slope)
    o_in = _with_ones(h_out) @ params.w2
    return o_in, _step(ste, o_in, slope)


def _check_data(params, x, y=None):
    """Shapes and finiteness of x (and y) against params; traced values pass the value checks."""
    if not isinstance(params, Params):
        raise TypeError(f"params must be a jaxdescent.network.Params, got {type(params).__name__}")
    w1, w2 = np.shape(params.w1), np.shape(params.w2)
    if len(w1) != 2 or len(w2) != 2 or w1[1] + 1 != w2[0]:
        raise ValueError(f"params must hold w1 (n_in + 1, n_hidden) and w2 (n_hidden + 1, n_out), got {w1} and {w2}")
    if np.ndim(x) != 2:
        raise ValueError(f"x must be 2-D (examples, features), got shape {np.shape(x)}")
    if np.shape(x)[1] + 1 != w1[0]:
        raise ValueError(f"x has {np.shape(x)[1]} features but params.w1 expects {w1[0] - 1} (plus the bias row)")
    _validate.finite_tree(x, "x")
    if y is not None:
        _check_targets(x, y, w2[1])


def _check_targets(x, y, n_out=None):
    if np.ndim(y) != 2:
        raise ValueError(f"y must be 2-D (examples, outputs), got shape {np.shape(y)}")
    if np.shape(y)[0] != np.shape(x)[0]:
        raise ValueError(f"y has {np.shape(y)[0]} examples but x has {np.shape(x)[0]}")
    if n_out is not None and np.shape(y)[1] != n_out:
        raise ValueError(f"y has {np.shape(y)[1]} outputs but params.w2 gives {n_out}")
    _validate.finite_tree(y, "y")


def _as_float(a):
    a = jnp.asarray(a)
    return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.result_type(float))


def forward(params: Params, x: ArrayLike, *, ste: Optional[str] = "identity", slope: ArrayLike = 1.0) -> jax.Array:
    """The lecture's feedforward pass, O_out = step(step([X 1] W₁) [· 1] W₂).

    Args:
      params: :class:`Params`.
      x: inputs of shape ``(examples, n_in)``, without the bias column.
      ste: the estimator used when this is differentiated (see :func:`step`).
      slope: the sigmoid surrogate's slope.

    Returns:
      ``O_out`` of shape ``(examples, n_out)``, holding 0.0 and 1.0.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxdescent.network import Params, forward
      >>> # one hidden unit computing x₀ AND x₁ (bias −1.5), copied to the output
      >>> p = Params(w1=jnp.array([[1.0], [1.0], [-1.5]]), w2=jnp.array([[1.0], [-0.5]]))
      >>> forward(p, jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))[:, 0]
      Array([0., 0., 0., 1.], dtype=float32)
    """
    _check_ste(ste)
    _check_slope(slope)
    _check_data(params, x)
    x = _as_float(x)
    return _layers(params, _with_ones(x), ste, jnp.asarray(slope, x.dtype))[1]


def _mse(params, x1, y, ste, slope):
    o_out = _layers(params, x1, ste, slope)[1]
    return jnp.sum((o_out - y) ** 2) / y.shape[0]


def mse(params: Params, x: ArrayLike, y: ArrayLike, *, ste: Optional[str] = "identity", slope: ArrayLike = 1.0) -> jax.Array:
    """The lecture's loss, (1/N) Σₑ Σₙ (O_out[e, n] − Y[e, n])², N the number of examples.

    Its value does not depend on ``ste``; its gradient does. With ``ste=None``
    the gradient is the true one: zero for every parameter (the lecture's "?").

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxdescent import datasets
      >>> from jaxdescent.network import init_params, mse
      >>> x, y = datasets.xor()
      >>> p = init_params(jax.random.key(0), 2, 4, 1)
      >>> g = jax.grad(mse)(p, x, y, ste=None)
      >>> float(jnp.abs(g.w1).max()), float(jnp.abs(g.w2).max())
      (0.0, 0.0)
    """
    _check_ste(ste)
    _check_slope(slope)
    _check_data(params, x, y)
    x = _as_float(x)
    return _mse(params, _with_ones(x), _as_float(y).astype(x.dtype), ste, jnp.asarray(slope, x.dtype))


def _predict(params, x1):
    o_in = _with_ones(_heaviside(x1 @ params.w1)) @ params.w2
    if o_in.shape[-1] == 1:
        return (o_in[..., 0] > 0).astype(jnp.int32)
    return jnp.argmax(o_in, axis=-1).astype(jnp.int32)


def predict(params: Params, x: ArrayLike) -> jax.Array:
    """Class indices: the argmax of ``O_in`` (with one output: 1 where ``O_in > 0``, i.e. ``O_out``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxdescent.network import Params, predict
      >>> p = Params(w1=jnp.array([[1.0, -1.0], [0.0, 0.0]]), w2=jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.5]]))
      >>> predict(p, jnp.array([[2.0], [-2.0]]))
      Array([0, 1], dtype=int32)
    """
    _check_data(params, x)
    return _predict(params, _with_ones(_as_float(x)))


def _labels(y):
    if y.shape[-1] == 1:
        return (y[..., 0] > 0.5).astype(jnp.int32)
    return jnp.argmax(y, axis=-1).astype(jnp.int32)


def _fit(key, x, y, slope, tx, *, n_hidden, num_steps, ste, stop_when_solved):
    """One training on the package's step loop (:func:`jaxdescent.descent.descend`): pure in its arguments."""
    x1 = _with_ones(x)
    labels = _labels(y)
    params = _init(key, x.shape[1], n_hidden, y.shape[1])

    def loss_fn(p):
        o_in, o_out = _layers(p, x1, ste, slope)
        return jnp.sum((o_out - y) ** 2) / y.shape[0], (o_in, o_out)

    def measure(w, loss, aux, grad):
        o_in, o_out = aux
        pred = jnp.argmax(o_in, -1) if o_in.shape[-1] > 1 else (o_in[:, 0] > 0)
        return loss, jnp.mean(pred.astype(jnp.int32) == labels), jnp.mean(jnp.all(o_out == y, axis=-1))

    def watch(t, w, loss, aux, grad, solved_step):
        solved_now = measure(w, loss, aux, grad)[2] == 1
        return jnp.where((solved_step < 0) & solved_now, t, solved_step)

    params, solved_step, (loss, accuracy, exact) = descend(
        jax.value_and_grad(loss_fn, has_aux=True), params, tx, num_steps=num_steps, watch=watch,
        watch_state=jnp.array(-1, jnp.int32), record=measure, stop=(lambda s: s >= 0) if stop_when_solved else None)
    solved_step = jnp.where((solved_step < 0) & (exact[-1] == 1), num_steps, solved_step)
    return params, History(loss, accuracy, exact, solved_step)


_STATIC = ("n_hidden", "num_steps", "ste", "stop_when_solved")


@functools.partial(jax.jit, static_argnames=("tx",) + _STATIC)
def _train_one(key, x, y, slope, *, tx, **settings):
    return _fit(key, x, y, slope, tx.value, **settings)


def _check_slope_used(slope, ste) -> None:
    """Refuses a slope the user set (traced, or not the default) when ``ste`` never reads it."""
    if ste != "sigmoid" and (_validate.is_traced(slope) or np.asarray(slope) != DEFAULT_SLOPE):
        raise _validate.InvalidArgument(
            f"slope is used only by the sigmoid estimator (ste='sigmoid'), but ste={ste!r}: drop slope "
            f"(got {slope!r}) or use ste='sigmoid'")


def _check_size(x, y, *, n_hidden, num_steps, num_runs=1, at_once=1, hint=""):
    """Refuses, before compiling, trainings whose weights, optimizer state, activations and histories cannot fit."""
    (num_examples, n_in), n_out, itemsize = np.shape(x), np.shape(y)[1], np.dtype(x.dtype).itemsize
    weights = (n_in + 1) * n_hidden + (n_hidden + 1) * n_out
    # weights, their gradient and two optimizer moments (Adam's); hidden and output activations of the forward pass
    working = itemsize * (4 * weights + 3 * num_examples * (n_hidden + 1 + n_out))
    weight_part = at_once * working + num_runs * itemsize * weights  # and the returned weights
    history_part = num_runs * ((num_steps + 1) * 3 * itemsize + 4)  # loss, accuracy, exact per step; solved_step
    name = "n_hidden" if weight_part >= history_part else "num_steps"
    runs = f"{num_runs:,} trainings ({at_once:,} at once)" if num_runs > 1 else "one training"
    _validate.check_memory(
        name, weight_part + history_part,
        f"the weights, optimizer state, activations and histories of {runs} ({weights:,} weights each for "
        f"n_hidden = {n_hidden:,}, {num_examples:,} examples, {num_steps + 1:,} recorded steps)",
        f"use a smaller n_hidden or fewer num_steps{hint}")


def _check_training(x, y, *, n_hidden, num_steps, ste, slope, stop_when_solved=False):
    _check_ste(ste)
    _check_slope(slope)
    _check_slope_used(slope, ste)
    n_hidden = _positive_int(n_hidden, "n_hidden")
    num_steps = _validate.num_steps(num_steps)
    if np.ndim(x) != 2:
        raise ValueError(f"x must be 2-D (examples, features), got shape {np.shape(x)}")
    if np.shape(x)[0] < 1 or np.shape(x)[1] < 1:
        raise ValueError(f"x must hold at least one example and one feature, got shape {np.shape(x)}")
    _validate.finite_tree(x, "x")
    _check_targets(x, y)
    if np.shape(y)[1] < 1:
        raise ValueError(f"y must have at least one output column, got shape {np.shape(y)}")
    if not _validate.is_traced(y) and not np.all((np.asarray(y) == 0) | (np.asarray(y) == 1)):
        raise _validate.InvalidArgument(
            f"y must hold 0/1 targets (one-hot for classes): the step network outputs 0 or 1, and 'solved' "
            f"means every output equals its target; got values {np.unique(np.asarray(y))[:5].tolist()}")
    if not isinstance(stop_when_solved, (bool, np.bool_)):
        raise _validate.InvalidArgument(f"stop_when_solved must be True or False, got {stop_when_solved!r}")
    x = _as_float(x)
    if not _validate.is_traced(slope):
        _validate.representable(np.asarray(slope, np.float64), "slope", x.dtype)
    return x, _as_float(y).astype(x.dtype), n_hidden, num_steps


def train(
    key: jax.Array,
    x: ArrayLike,
    y: ArrayLike,
    *,
    n_hidden: int,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    ste: Optional[str] = "identity",
    slope: ArrayLike = DEFAULT_SLOPE,
    stop_when_solved: bool = False,
) -> tuple[Params, History]:
    """Trains a fresh step network on ``(x, y)`` (full batch) as one compiled ``lax.scan``.

    The parameters come from :func:`init_params` with ``key``; every step takes
    the gradient of the lecture's MSE through ``step(·, ste, slope=slope)`` in
    both layers and applies ``optimizer``.

    Args:
      key: a ``jax.random`` key, the only source of randomness.
      x: inputs ``(examples, n_in)``.
      y: targets ``(examples, n_out)`` of 0/1 (one-hot for classes).
      n_hidden: hidden units (without the bias unit).
      optimizer: any ``optax.GradientTransformation``, e.g. ``optax.adam(1e-2)``
        (``train`` has no learning-rate argument, so it takes the built
        transformation; built inside your own traced function, as in
        ``sweep_fn(lambda hp, key: train(..., optimizer=optax.adam(hp["lr"]))``,
        its hyperparameters are traced). Outside a trace a new optimizer
        object compiles anew: for many values use :func:`jaxdescent.sweep_fn`
        or :func:`train_many`. The hyperparameters of an
        ``optax.inject_hyperparams`` optimizer are checked (finite; optax's
        ``b1``, ``b2``, ``momentum``, ``eps`` … in range); those of an
        already built ``optax.adam(...)`` are hidden in its closures and
        cannot be: a NaN there gives NaN parameters, not an error. To have
        them checked, use ``optax.inject_hyperparams(optax.adam)(...)`` or
        :func:`train_many` with ``optimizer_factory``.
      num_steps: updates to make (>= 0).
      ste: the estimator (see :func:`step`).
      slope: the sigmoid surrogate's slope (traced); only with ``ste="sigmoid"``
        (any other estimator ignores it, so setting it is refused).
      stop_when_solved: if True, the parameters stop changing at the first
        step at which the training set is solved, so the returned net is solved.

    Returns:
      ``(params, history)``: the final :class:`Params` and a :class:`History`.

    Examples:
      >>> import jax, optax
      >>> from jaxdescent import datasets
      >>> from jaxdescent.network import forward, train
      >>> x, y = datasets.xor()
      >>> params, history = train(jax.random.key(0), x, y, n_hidden=8,
      ...                         optimizer=optax.adam(0.05), num_steps=500)
      >>> history.loss.shape, int(history.solved_step) >= 0
      ((501,), True)
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation such as optax.adam(1e-2), got {optimizer!r}")
    check_transformation(optimizer)
    _validate.prng_key(key, "key")
    x, y, n_hidden, num_steps = _check_training(x, y, n_hidden=n_hidden, num_steps=num_steps, ste=ste, slope=slope,
                                                stop_when_solved=stop_when_solved)
    _check_size(x, y, n_hidden=n_hidden, num_steps=num_steps)
    return _train_one(key, x, y, jnp.asarray(slope, x.dtype), tx=Static(optimizer), n_hidden=n_hidden,
                      num_steps=num_steps, ste=ste, stop_when_solved=bool(stop_when_solved))


_CHUNK_BYTES = {"cpu": 4 << 20, "accelerator": 1 << 30}


def _auto_chunk(num_examples, n_hidden):
    """Runs per chunk whose hidden activations (float32) fit in about 4 MiB of CPU cache, or 1 GiB on GPU/TPU."""
    budget = _CHUNK_BYTES["cpu" if jax.default_backend() == "cpu" else "accelerator"]
    return max(1, budget // (4 * num_examples * (n_hidden + 1)))


def _grid_run(hp, key, data, *, optimizer, hyperparams, **settings):
    """One run of :func:`train_many` for the engine: its key and values come from ``hp``."""
    x, y, slope = data
    slope = hp.get("slope", slope)
    tx = make_optimizer(optimizer, hp["learning_rate"], {k: hp[k] for k in hyperparams if k != "slope"})
    return _fit(hp["key"], x, y, slope, tx, **settings)


def train_many(
    keys: jax.Array,
    x: ArrayLike,
    y: ArrayLike,
    *,
    learning_rates: ArrayLike,
    optimizer_factory: Optional[Callable[..., optax.GradientTransformation]] = None,
    hyperparams: Optional[dict] = None,
    n_hidden: int,
    num_steps: int,
    ste: Optional[str] = "identity",
    slope: ArrayLike = DEFAULT_SLOPE,
    stop_when_solved: bool = False,
    chunk_size: Optional[int] = None,
    devices=None,
    out=None,
    progress=True,
) -> tuple[Params, History]:
    """:func:`train` for every learning rate × hyperparameters × key at once, on the engine, compiled once.

    Learning rates and hyperparameters are traced (the optimizer contract of
    :func:`jaxdescent.descent.make_optimizer`), so new keys or values of the
    same shapes reuse the compilation.

    Args:
      keys: a batch of ``jax.random`` keys, shape ``(seeds,)``.
      x: the training inputs, shared by all runs.
      y: the training targets, shared by all runs.
      learning_rates: shape ``(rates,)``, each finite and > 0.
      optimizer_factory: ``None`` for ``optax.sgd`` (the lecture's rule
        W := W − α ∂MSE/∂W), or an optax factory such as ``optax.adam``, called
        with ``learning_rate=`` and the optimizer hyperparameters.
      hyperparams: name → 1-D array: more axes after the learning rate.
        ``"slope"`` sweeps the sigmoid estimator's slope (only with
        ``ste="sigmoid"``); any other name is an optimizer keyword (``b1`` for
        ``optax.adam``, ``momentum`` for ``optax.sgd``), each value a finite
        number representable in the data's float.
      n_hidden: as in :func:`train`.
      num_steps: as in :func:`train`.
      ste: as in :func:`train`.
      slope: as in :func:`train`.
      stop_when_solved: as in :func:`train`.
      chunk_size: how many runs are vmapped together; the chunks run one after
        another inside the same compiled program. ``None`` picks, on CPU, as
        many as keep the hidden activations within about 4 MiB (all runs for
        XOR and parity, a few for digits), which is what makes the vmapped runs
        at least as fast per run as sequential ones; on GPU/TPU, up to 1 GiB of
        them (a GPU wants every run in flight at once). Results do not depend
        on it beyond float rounding.
      devices: as for :func:`jaxdescent.sweep_fn`: the devices to shard over.
      out: as for :func:`jaxdescent.sweep_fn`: a folder to save pieces to and resume from.
      progress: as for :func:`jaxdescent.sweep_fn`.

    Returns:
      ``(params, history)`` whose arrays have leading axes ``(rates, *hyperparams, seeds)``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxdescent import datasets
      >>> from jaxdescent.network import train_many
      >>> x, y = datasets.xor()
      >>> keys = jax.random.split(jax.random.key(0), 16)
      >>> params, history = train_many(keys, x, y, learning_rates=jnp.array([0.01, 0.05]),
      ...                              optimizer_factory=optax.adam, n_hidden=8, num_steps=300)
      >>> params.w1.shape, history.loss.shape, history.solved_step.shape
      ((2, 16, 3, 8), (2, 16, 301), (2, 16))
    """
    _validate.learning_rate(learning_rates, "learning_rates")
    if not _validate.is_traced(learning_rates) and np.ndim(learning_rates) != 1:
        raise ValueError(f"learning_rates must be 1-D, got shape {np.shape(learning_rates)}")
    _validate.prng_key(keys, "keys", batch=True)
    if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.wrap_key_data(keys)
    x, y, n_hidden, num_steps = _check_training(x, y, n_hidden=n_hidden, num_steps=num_steps, ste=ste, slope=slope,
                                                stop_when_solved=stop_when_solved)
    hyperparams = dict(hyperparams or {})
    for k, v in hyperparams.items():
        name = f"hyperparams[{k!r}]"
        if not _validate.is_traced(v) and not _validate.has_bool(v) and np.ndim(v) != 1:  # an axis of the grid
            raise _validate.InvalidArgument(f"{name} must be a 1-D array of values (one axis of the grid), got "
                                            f"shape {np.shape(v)}")
        if k == "slope" and ste != "sigmoid":
            raise _validate.InvalidArgument(
                f"{name}: the slope is used only by the sigmoid estimator (ste='sigmoid'), but ste={ste!r}")
        if k == "slope":
            _validate.learning_rate(v, name, dtype=x.dtype)
        else:
            _validate.finite_numbers(v, name, dtype=x.dtype)
    check_optimizer(optimizer_factory, {k: v for k, v in hyperparams.items() if k != "slope"}, "optimizer_factory")
    if chunk_size is None:
        chunk_size = _auto_chunk(x.shape[0], n_hidden)
    chunk_size = _positive_int(chunk_size, "chunk_size")
    num_runs = math.prod([np.shape(learning_rates)[0], *(np.size(v) for v in hyperparams.values()), keys.shape[0]])
    _check_size(x, y, n_hidden=n_hidden, num_steps=num_steps, num_runs=num_runs, at_once=min(chunk_size, num_runs),
                hint=", fewer runs (keys, learning_rates, hyperparams) or a smaller chunk_size")
    cast = lambda v: jnp.asarray(v, x.dtype) if _validate.is_traced(v) else np.asarray(v, x.dtype)
    items = [("learning_rate", cast(learning_rates)), *((k, cast(v)) for k, v in hyperparams.items()), ("key", keys)]
    run = functools.partial(_grid_run, optimizer=optimizer_factory, hyperparams=tuple(hyperparams),
                            n_hidden=n_hidden, num_steps=num_steps, ste=ste, stop_when_solved=bool(stop_when_solved))
    return _engine.run_grid(run, _engine.Coords(items), key=jax.random.key(0), shared=(x, y, jnp.asarray(slope, x.dtype)),
                            chunk_size=chunk_size, devices=devices, out=out, progress=progress)
