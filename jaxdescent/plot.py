"""Figures (the ``plot`` extra): each function takes results and returns a ``matplotlib.figure.Figure``.

No pyplot, no global state: save with ``fig.savefig(path)``; in a notebook,
display the saved PNG. Install with ``pip install "jaxdescent[plot]"``.
"""

from typing import Callable, Mapping, Optional, Sequence

import numpy as np

try:
    from matplotlib import colors
    from matplotlib.figure import Figure
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('jaxdescent.plot needs matplotlib: pip install "jaxdescent[plot]"') from e


def _finite(a):
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), a, np.nan)


def descent_on_loss(loss_fn: Callable, paths: Mapping[str, object], *, max_points: int = 200) -> Figure:
    """The loss curve with gradient-descent steps drawn on it, one panel per run.

    Args:
      loss_fn: a scalar loss of a scalar w (vectorised over NumPy-like arrays by ``jax.vmap``).
      paths: title → :class:`~jaxdescent.Trajectory`; non-finite iterates end the drawing.
      max_points: at most this many iterates are drawn per run.
    """
    import jax

    f = jax.vmap(loss_fn)
    fig = Figure(figsize=(5 * len(paths), 4), layout="constrained")
    for ax, (title, path) in zip(fig.subplots(1, len(paths), squeeze=False)[0], paths.items()):
        w, loss = _finite(path.w)[:max_points], _finite(path.loss)[:max_points]
        shown = np.isfinite(w) & np.isfinite(loss)
        w_shown = w[shown]
        span = max(w_shown.max() - w_shown.min(), 0.5)
        lo, hi = w_shown.min() - 0.1 * span, w_shown.max() + 0.1 * span
        grid = np.linspace(lo, hi, 400, dtype=np.float32)
        ax.plot(grid, np.asarray(f(grid)), color="0.3", lw=1.5, label="loss")
        ax.plot(w_shown, loss[shown], "-o", color="C3", ms=3, lw=0.8, label=f"iterates 0–{len(w_shown) - 1}")
        ax.annotate("start", (w_shown[0], loss[shown][0]), textcoords="offset points", xytext=(5, 5))
        if np.ptp(loss[shown]) > 1e3:
            ax.set_yscale("symlog", linthresh=1.0)
        lost = int(np.sum(~np.isfinite(_finite(path.w))))
        if lost:
            title += f"  ({lost} later iterates inf/nan)"
        ax.set(title=title, xlabel="w", ylabel="loss f(w)")
        ax.legend(loc="upper center")
    return fig


def loss_vs_step(paths: Mapping[str, object], *, minimum: float = 0.0) -> Figure:
    """loss − ``minimum`` against step, log scale; a run that overflows is marked where it does."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for i, (label, path) in enumerate(paths.items()):
        gap = _finite(path.loss) - minimum
        floor = 8 * np.finfo(np.asarray(path.loss).dtype).eps * max(1.0, abs(minimum))  # rounding noise
        steps = np.arange(len(gap))
        ax.plot(steps, np.where(gap > floor, gap, np.nan), color=f"C{i}", label=label)
        bad = np.flatnonzero(~np.isfinite(gap))
        if bad.size:
            last = bad[0] - 1
            ax.plot(last, gap[last], "x", color=f"C{i}", ms=10, mew=2)
            ax.annotate(f"inf at step {bad[0]}", (last, gap[last]), textcoords="offset points", xytext=(6, -4), color=f"C{i}")
    ax.set(xscale="symlog", yscale="log", xlabel="step", ylabel="loss − min loss (float rounding floor hidden)")
    ax.legend()
    return fig


def phase_diagram(
    learning_rate: np.ndarray,
    w0: np.ndarray,
    diverged_step: np.ndarray,
    converged_step: np.ndarray,
    *,
    title: str = "",
    critical: Optional[float] = None,
) -> Figure:
    """Runs over (learning rate, w0), coloured by the step at which each converged (blues) or diverged (reds).

    Args:
      learning_rate: (L,) learning rates (log x axis).
      w0: (W,) scalar start points.
      diverged_step, converged_step: (L, W), −1 where never.
      critical: a learning rate to mark, e.g. 2/f″(w*).
    """
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    lr, w = np.asarray(learning_rate), np.asarray(w0)
    conv = np.ma.masked_less(np.asarray(converged_step, float).T, 0)
    div = np.ma.masked_less(np.asarray(diverged_step, float).T, 0)
    neither = np.ma.masked_where((conv.mask == False) | (div.mask == False), np.ones_like(conv.data))  # noqa: E712
    ax.pcolormesh(lr, w, neither, cmap=colors.ListedColormap(["0.85"]), shading="nearest")
    norm = lambda a: colors.LogNorm(vmin=max(1, a.min()), vmax=max(2, a.max())) if a.count() else None
    if conv.count():
        m = ax.pcolormesh(lr, w, np.ma.maximum(conv, 1), cmap="Blues_r", norm=norm(conv), shading="nearest")
        fig.colorbar(m, ax=ax, label="converged at step")
    if div.count():
        m = ax.pcolormesh(lr, w, np.ma.maximum(div, 1), cmap="Reds_r", norm=norm(div), shading="nearest")
        fig.colorbar(m, ax=ax, label="diverged at step")
    if critical is not None:
        ax.axvline(critical, color="k", ls="--", lw=1.2, label=f"2/f″(w*) = {critical:.4g}")
        ax.legend(loc="lower left")
    ax.set(xscale="log", xlabel="learning rate α", ylabel="start w0",
           title=(title + "\n" if title else "") + "gray: neither converged nor diverged within the steps run")
    return fig


def sweep_figure(result, *, title: str = "") -> Figure:
    """The picture of a :class:`jaxdescent.SweepResult`.

    Scalar start points: the :func:`phase_diagram` over learning rate × w0 (at
    the first value of any further hyperparameter, named in the title).
    Vector start points: final-state maps, one panel per learning rate (at
    most four), each start point coloured by how its run ended.
    """
    axes, coords = result.axes, result.coords
    hps = [a for a in axes if a not in ("learning_rate", "w0")]
    first = (slice(None),) + (0,) * len(hps)
    at = ", ".join(f"{h} = {float(np.asarray(coords[h])[0]):g}" for h in hps)
    title = title + (f" ({at})" if at else "")
    lr, w0 = np.asarray(coords["learning_rate"]), np.asarray(coords["w0"])
    div, conv = np.asarray(result.diverged_step)[first], np.asarray(result.converged_step)[first]
    if w0.ndim == 1:
        return phase_diagram(lr, w0, div, conv, title=title)
    picks = np.unique(np.linspace(0, len(lr) - 1, min(4, len(lr))).round().astype(int))
    fig = Figure(figsize=(4 * len(picks), 4.2), layout="constrained")
    status = np.where(div >= 0, 0, np.where(conv >= 0, 2, 1))
    cmap = colors.ListedColormap(["#d62728", "0.8", "C0"])
    for ax, i in zip(np.atleast_1d(fig.subplots(1, len(picks))), picks):
        ax.scatter(w0[:, 0], w0[:, 1], c=status[i], cmap=cmap, vmin=-0.5, vmax=2.5, s=12, marker="s")
        ax.set(title=f"α = {lr[i]:g}", xlabel="w0[0]", ylabel="w0[1]")
    fig.suptitle((title + "\n" if title else "") + "blue: converged, red: diverged, gray: neither")
    return fig


def bowl_path(loss_fn: Callable, path, *, title: str = "") -> Figure:
    """Contours of a 2-D loss with the gradient-descent path (w of shape (steps, 2)) drawn over them."""
    import jax

    w = _finite(path.w)
    span = np.nanmax(np.abs(w)) * 1.15
    g = np.linspace(-span, span, 200, dtype=np.float32)
    g1, g2 = np.meshgrid(g, g)
    z = np.asarray(jax.vmap(loss_fn)(np.stack([g1.ravel(), g2.ravel()], axis=1))).reshape(g1.shape)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    levels = np.unique(np.round(np.geomspace(max(z.min(), 0.5), z.max(), 9), 1))
    cs = ax.contour(g1, g2, z, levels=levels, cmap="viridis", norm=colors.LogNorm())
    ax.clabel(cs, fmt="%g", fontsize=8)
    ax.plot(w[:, 0], w[:, 1], "-o", color="C3", ms=3, lw=1)
    ax.annotate(f"start ({w[0, 0]:g}, {w[0, 1]:g})", w[0], textcoords="offset points", xytext=(5, 5))
    ax.plot([0], [0], "k*", ms=10)
    ax.set(xlabel="w₁", ylabel="w₂", aspect="equal", title=title)
    return fig


def training_curves(loss: np.ndarray, accuracy: np.ndarray, labels: Sequence[str], *, title: str = "") -> Figure:
    """Mean over seeds (line) and interquartile band of loss and accuracy per step.

    Args:
      loss, accuracy: (groups, seeds, steps), e.g. one group per learning rate.
      labels: one per group.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, values, name in zip(axes, (loss, accuracy), ("training MSE", "training accuracy")):
        values = np.asarray(values, float)
        steps = np.arange(1, values.shape[-1] + 1)
        for i, label in enumerate(labels):
            q1, q3 = np.nanpercentile(values[i], [25, 75], axis=0)
            ax.plot(steps, np.nanmean(values[i], axis=0), color=f"C{i}", label=label)
            ax.fill_between(steps, q1, q3, color=f"C{i}", alpha=0.2)
        ax.set(xscale="log", xlabel="step", ylabel=name)
    axes[0].legend(title="mean, IQR over seeds")
    fig.suptitle(title)
    return fig


def lecture_figures() -> dict:
    """The lecture's pictures, computed afresh: name → Figure (what ``jaxdescent reproduce --out`` writes)."""
    import jax
    import jax.numpy as jnp

    from jaxdescent import datasets, network, sweep
    from jaxdescent.descent import gradient_descent
    from jaxdescent.losses import bowl, sextic, sextic_hessian
    from jaxdescent.search import stationary_point

    w_star, f_star = stationary_point(sextic, 1.0)
    runs = {f"α = {a:g}": gradient_descent(sextic, 1.9, learning_rate=a, num_steps=10_000) for a in (1, 0.1, 0.01, 0.001)}
    lr, w0 = np.logspace(-4, 0, 200, dtype=np.float32), np.linspace(-2, 2, 201, dtype=np.float32)
    phase = sweep(sextic, w0=w0, learning_rate=lr, num_steps=1000)
    x, y = datasets.xor()
    rates = jnp.array([0.001, 0.01, 0.1])
    _, history = network.train_many(jax.random.split(jax.random.key(0), 64), x, y, learning_rates=rates,
                                    optimizer_factory=None, n_hidden=4, num_steps=2000, ste="identity")
    return {
        "descent_on_loss": descent_on_loss(sextic, {"α = 1 from w = 1.9": runs["α = 1"], "α = 0.01 from w = 1.9": runs["α = 0.01"]}),
        "loss_vs_step": loss_vs_step(runs, minimum=float(f_star)),
        "phase_diagram": phase_diagram(lr, w0, np.asarray(phase.diverged_step), np.asarray(phase.converged_step),
                                       title="sextic, 1000 steps of w := w − α f′(w)",
                                       critical=float(2 / sextic_hessian(w_star))),
        "bowl_path": bowl_path(bowl, gradient_descent(bowl, jnp.array([-8.0, 7.0]), learning_rate=0.1, num_steps=40),
                               title="y = 2w₁² + w₂², α = 0.1 from (−8, 7)"),
        "network_training": training_curves(history.loss, history.accuracy, [f"α = {a:g}" for a in rates.tolist()],
                                            title="the lecture's step network on XOR: W := W − α ∂MSE/∂W with "
                                                  "the identity straight-through estimator, 4 hidden, 64 seeds"),
    }
