"""The ``jaxdescent`` command: the lecture reproduced, sweeps and step-network trainings saved to a folder.

Errors in the arguments are one line on stderr and exit status 2, never a traceback.
"""

import argparse
import importlib
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

OPTIMIZERS = ("gd", "sgd", "momentum", "adam")


# ---------------------------------------------------------------- parsing


def parse_grid(text: str, name: str) -> np.ndarray:
    """``linspace:START:STOP:NUM``, ``logspace:START:STOP:NUM`` (exponents, as NumPy) or ``a,b,c``.

    For 2-D start points: points separated by ``;`` (``-8,7;1,2``) or the product
    of two grids joined by `` x `` (``linspace:-2:2:5 x linspace:-2:2:5``).
    """
    text = text.strip()
    try:
        if " x " in text:
            axes = [parse_grid(part, name) for part in text.split(" x ")]
            mesh = np.meshgrid(*axes, indexing="ij")
            return np.stack([m.ravel() for m in mesh], axis=1)
        if ";" in text:
            points = [[float(v) for v in p.split(",")] for p in text.split(";") if p.strip()]
            return np.asarray(points, dtype=np.float64)
        kind, _, rest = text.partition(":")
        if kind in ("linspace", "logspace"):
            start, stop, num = rest.split(":")
            num = int(num)
            if num < 1:
                raise ValueError
            return getattr(np, kind)(float(start), float(stop), num)
        return np.asarray([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        raise ValueError(
            f"{name}: cannot read grid {text!r}; use linspace:START:STOP:NUM, logspace:START:STOP:NUM "
            "or a comma list such as 0.1,0.01") from None


def learning_rates(text: str) -> np.ndarray:
    """``--learning-rate``'s grid, each finite and > 0."""
    grid = parse_grid(text, "--learning-rate")
    if np.any(~np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(f"--learning-rate: every learning rate must be finite and > 0, got {text!r}")
    return grid


def resolve_loss(name: str):
    """A loss of ``jaxdescent.losses`` by name, or ``module:function``."""
    from jaxdescent import losses

    if ":" in name:
        module, _, attr = name.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"--loss: cannot load {name!r}: {e}") from None
    else:
        known = sorted(n for n in dir(losses) if not n.startswith("_") and callable(getattr(losses, n))
                       and not n.endswith(("_grad", "_hessian")) and n not in ("ArrayLike",)
                       and getattr(getattr(losses, n), "__module__", "") == losses.__name__)
        if name not in known:
            raise ValueError(f"--loss: unknown loss {name!r}; choose one of {', '.join(known)} or give module:function")
        fn = getattr(losses, name)
    if not callable(fn):
        raise ValueError(f"--loss: {name!r} is not a function")
    return fn


def optimizer_factory(name: str):
    """``gd`` (the lecture's rule: ``optax.sgd``), ``sgd`` (``optax.sgd``), ``momentum`` (sgd, 0.9) or ``adam``."""
    import functools

    import optax

    return {"gd": optax.sgd, "sgd": optax.sgd, "momentum": functools.partial(optax.sgd, momentum=0.9),
            "adam": optax.adam}[name]


def hyperparams(items: Sequence[str]) -> dict:
    """``--hyperparam NAME=GRID`` (repeatable) → name → 1-D grid, in the order given."""
    out = {}
    for item in items or ():
        name, sep, grid = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"--hyperparam: expected NAME=GRID such as momentum=0.0,0.5,0.9, got {item!r}")
        if name in out:
            raise ValueError(f"--hyperparam: {name!r} given twice")
        out[name] = parse_grid(grid, f"--hyperparam {name}")
        if not np.all(np.isfinite(out[name])):
            raise ValueError(f"--hyperparam {name}: every value must be finite, got {grid!r}")
    return out


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# ---------------------------------------------------------------- helpers


def _fast_path() -> None:
    """The command owns its process, so it takes XLA's fast CPU loop path (see jaxdescent.use_fast_cpu_flags)."""
    from jaxdescent import use_fast_cpu_flags

    try:
        use_fast_cpu_flags()
    except RuntimeError:  # JAX already started (main() called from a program that used it): keep its flags
        pass


def progress_bar(quiet: bool, desc: str):
    """Wraps an iterable in a tqdm bar, unless quiet or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return lambda it: tqdm(it, desc=desc, unit="piece", file=sys.stderr)


def run_meta(args, started: float, **extra) -> dict:
    import jax

    import jaxdescent

    return {
        "command": shlex.join(["jaxdescent", *args.argv]),
        "jaxdescent_version": jaxdescent.__version__,
        "jax_version": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "seconds": round(time.time() - started, 3),
        **extra,
    }


def _number(x: float, decimals: int) -> str:
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1e10 or 0 < abs(x) < 10.0**-decimals:
        return f"{x:.3e}"
    if decimals == 0 or x.is_integer() and abs(x) > 1:
        return f"{x:,.0f}"
    return f"{x:,.{decimals}f}"


def format_rows(rows) -> str:
    """The lecture table as aligned text."""
    mark = {True: "yes", False: "NO", None: "—"}
    table = [("quantity", "lecture", "float32", "float64", "same", "note")]
    for r in rows:
        shown = min(r.decimals + 2, 8)
        lecture = "?" if r.lecture is None else _number(r.lecture, r.decimals)
        table.append((r.quantity, lecture, _number(r.float32, shown), _number(r.float64, shown), mark[r.agrees], r.note))
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:5], widths[1:])]
        lines.append("  ".join(cells + [line[5]]).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# ---------------------------------------------------------------- commands


def _reproduce(args) -> None:
    from jaxdescent.lecture import reproduce

    out = None
    if args.out:
        from jaxdescent import results

        out = results.prepare(args.out, {"subcommand": "reproduce"})
    rows = reproduce()
    as_json = json.dumps([dict(r._asdict(), agrees=r.agrees) for r in rows], indent=1, allow_nan=True)
    table = format_rows(rows) + (
        '\n\n"same": float32 matches the slide at the slide\'s precision. '
        "Iterates are numbered from 0 (the start w = 1.9).")
    print(as_json if args.json else table)
    if out is not None:
        (out / "lecture.txt").write_text(table + "\n")
        (out / "lecture.json").write_text(as_json + "\n")
        from jaxdescent.plot import lecture_figures

        for name, fig in lecture_figures().items():
            fig.savefig(out / f"{name}.png", dpi=110)
        if not args.quiet:
            print(f"\ntable and figures written to {out}/", file=sys.stderr)


def _sweep(args) -> None:
    from jaxdescent import results, sweep

    _fast_path()
    started = time.time()
    loss_fn = resolve_loss(args.loss)
    learning_rate = learning_rates(args.learning_rate)
    w0 = parse_grid(args.w0, "--w0")
    hps = hyperparams(args.hyperparam)
    r = sweep(loss_fn, w0=w0.astype(np.float32), learning_rate=learning_rate.astype(np.float32),
              num_steps=args.num_steps, optimizer=optimizer_factory(args.optimizer),
              hyperparams={k: v.astype(np.float32) for k, v in hps.items()}, out=args.out,
              piece_runs=args.piece_runs, progress=progress_bar(args.quiet, "sweep"), stop_early=args.stop_early)
    out = Path(args.out)
    num_runs = int(np.size(r.final_loss))
    config = {"subcommand": "sweep", "loss": args.loss, "learning_rate": args.learning_rate, "w0": args.w0,
              "num_steps": args.num_steps, "optimizer": args.optimizer, "hyperparams": args.hyperparam or [],
              "stop_early": args.stop_early}
    results.save_json(out / "meta.json", run_meta(args, started, **config, axes=list(r.axes), runs=num_runs))
    if args.csv:
        results.write_csv(out / "results.csv", r.columns, num_runs)
    if args.plot:
        from jaxdescent import plot

        fig = plot.sweep_figure(r, title=f"{args.loss}, {args.num_steps} steps, {args.optimizer}")
        fig.savefig(out / ("phase_diagram.png" if w0.ndim == 1 else "final_state.png"), dpi=110)
    diverged = np.asarray(r.diverged)
    converged = np.asarray(r.converged_step) >= 0
    print(f"{num_runs} runs of {args.num_steps} steps: {int(converged.sum())} converged, "
          f"{int(diverged.sum())} diverged, {int((~converged & ~diverged).sum())} neither; "
          f"{time.time() - started:.1f} s; results in {out}/results.npz")


def _run_arguments(p: argparse.ArgumentParser, *, plot: str) -> None:
    """The arguments ``sweep`` and ``train`` share."""
    p.add_argument("--learning-rate", required=True, metavar="GRID", help="linspace:A:B:N, logspace:A:B:N or a,b,c")
    p.add_argument("--num-steps", required=True, type=non_negative_int, metavar="N")
    p.add_argument("--out", required=True, metavar="DIR", help="the results folder (a rerun resumes there)")
    p.add_argument("--plot", action="store_true", help=f"write {plot}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def load_dataset(name: str):
    """``xor``, ``parity:N`` or ``digits`` → (x_train, y_train, x_test or None, y_test or None)."""
    from jaxdescent import datasets

    if name == "xor":
        return (*datasets.xor(), None, None)
    if name.startswith("parity:"):
        try:
            n = int(name.partition(":")[2])
        except ValueError:
            raise ValueError(f"--dataset: parity needs a bit count, as parity:6, got {name!r}") from None
        return (*datasets.parity(n), None, None)
    if name == "digits":
        return datasets.digits()
    raise ValueError(f"--dataset: unknown dataset {name!r}; choose xor, parity:N or digits")


def _train(args) -> None:
    import jax
    import jax.numpy as jnp

    from jaxdescent import network, results, sweep_fn

    _fast_path()
    started = time.time()
    x, y, x_test, y_test = load_dataset(args.dataset)
    axes = {"learning_rate": learning_rates(args.learning_rate), **hyperparams(args.hyperparam)}
    axes = {k: v.astype(np.float32) for k, v in axes.items()}
    factory = optimizer_factory(args.optimizer)
    ste = None if args.ste == "none" else args.ste
    labels_test = None if y_test is None else np.argmax(np.asarray(y_test), -1)

    def run(hp, key):
        opt = {k: v for k, v in hp.items() if k not in ("learning_rate", "slope")}
        params, history = network.train(key, x, y, n_hidden=args.hidden, num_steps=args.num_steps, ste=ste,
                                        optimizer=factory(learning_rate=hp["learning_rate"], **opt),
                                        slope=hp.get("slope", args.slope))
        metrics = history._asdict()
        if x_test is not None:
            metrics["test_accuracy"] = jnp.mean(network.predict(params, x_test) == labels_test)
        return metrics

    if "slope" in axes and ste != "sigmoid":
        raise ValueError("--hyperparam slope: the slope is used only by --ste sigmoid")
    try:
        factory(learning_rate=0.1, **{k: float(v[0]) for k, v in axes.items() if k not in ("learning_rate", "slope")})
    except TypeError as e:
        raise ValueError(f"--hyperparam: --optimizer {args.optimizer} does not take it: {e}") from None
    r = sweep_fn(run, axes, seeds=args.seeds, key=jax.random.key(args.seed), out=args.out)
    out = Path(args.out)
    config = {"subcommand": "train", "dataset": args.dataset, "hidden": args.hidden, "optimizer": args.optimizer,
              "learning_rate": args.learning_rate, "hyperparams": args.hyperparam or [], "seeds": args.seeds,
              "num_steps": args.num_steps, "ste": args.ste, "slope": args.slope, "seed": args.seed}
    results.save_json(out / "meta.json", run_meta(args, started, **config, axes=list(r.axes)))
    m = {k: np.asarray(v) for k, v in r.metrics.items()}
    if args.plot:
        from jaxdescent import plot

        flat = lambda a: a.reshape((-1,) + a.shape[-2:])  # one curve group per point of the grid
        names = [", ".join(f"{k} = {row[k]:g}" for k in axes) for row in r.to_pandas().iloc[::args.seeds].to_dict("records")]
        fig = plot.training_curves(flat(m["loss"]), flat(m["accuracy"]), names,
                                   title=f"{args.dataset}, {args.hidden} hidden, {args.optimizer}, ste={args.ste}")
        fig.savefig(out / "training_curves.png", dpi=110)
    table = r.to_pandas().drop(columns="seed").groupby(list(axes), sort=False).mean()
    lines = [f"{args.seeds} seeds × {len(table)} settings ({' × '.join(f'{len(v)} {k}' for k, v in axes.items())}), "
             f"{args.num_steps} steps, {time.time() - started:.1f} s"]
    solved = (m["solved_step"] >= 0).reshape(len(table), -1).mean(-1)
    final = m["accuracy"][..., -1].reshape(len(table), -1).mean(-1)
    test = m["test_accuracy"].reshape(len(table), -1).mean(-1) if "test_accuracy" in m else None
    for i, point in enumerate(table.index):
        point = point if isinstance(point, tuple) else (point,)
        line = (f"  {', '.join(f'{k} = {v:g}' for k, v in zip(axes, point))}: solved {solved[i]:.1%} of seeds, "
                f"final train accuracy {final[i]:.1%}")
        if test is not None:
            line += f", test accuracy {test[i]:.1%}"
        lines.append(line)
    print("\n".join(lines) + f"\nresults in {out}/results.npz")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jaxdescent", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "reproduce", help="every number of the lecture beside jaxdescent's",
        description="Recompute every number of the lecture in float32 and float64 and print them beside the slides'.",
        epilog="example: jaxdescent reproduce --out lecture/   (also writes the figures there)")
    r.add_argument("--json", action="store_true", help="print the table as JSON")
    r.add_argument("--out", metavar="DIR", help="also write the table and the lecture's figures (PNG) to DIR")
    r.add_argument("--quiet", action="store_true", help="nothing on stderr")
    r.set_defaults(run=_reproduce)

    s = sub.add_parser(
        "sweep", help="gradient descent over a grid of learning rates x start points",
        description="Run every (learning rate, hyperparameters, w0) point as one vmapped, compiled program, in "
                    "pieces saved to DIR (a killed sweep resumes from its finished pieces).",
        epilog="example: jaxdescent sweep --loss sextic --learning-rate logspace:-4:0:200 "
               "--w0 linspace:-2:2:200 --num-steps 1000 --out sweep/ --plot")
    s.add_argument("--loss", required=True, help="a loss of jaxdescent.losses (sextic, quadratic, bowl, himmelblau) or module:function")
    s.add_argument("--w0", required=True, metavar="GRID", help="start points: a grid, or for 2-D losses 'x1,y1;x2,y2' or 'GRID x GRID'")
    s.add_argument("--optimizer", choices=OPTIMIZERS, default="gd",
                   help="gd: the lecture's w := w − α∇ (default); sgd: optax.sgd; momentum: sgd with 0.9; adam")
    s.add_argument("--hyperparam", action="append", metavar="NAME=GRID",
                   help="another axis: an optimizer keyword and its grid, e.g. momentum=0.0,0.5,0.9 (repeatable)")
    _run_arguments(s, plot="DIR/phase_diagram.png")
    s.add_argument("--piece-runs", type=positive_int, default=1 << 16, metavar="N",
                   help="runs per saved piece (default 65536)")
    s.add_argument("--csv", action="store_true", help="also write DIR/results.csv, one row per run")
    s.add_argument("--stop-early", action="store_true",
                   help="stop each run at its first converged or diverged step (final_w is that iterate)")
    s.set_defaults(run=_sweep)

    t = sub.add_parser(
        "train", help="the lecture's step network, vmapped over seeds and learning rates",
        description="Train the two-layer step network with a straight-through estimator for every seed, "
                    "learning rate and hyperparameter at once, in pieces saved to DIR (a killed run resumes).",
        epilog="example: jaxdescent train --dataset xor --hidden 4 --optimizer adam "
               "--learning-rate 0.01,0.1 --seeds 256 --num-steps 2000 --out xor/ --plot")
    t.add_argument("--dataset", required=True, help="xor, parity:N (all 2^N patterns, ±1) or digits (needs scikit-learn)")
    t.add_argument("--hidden", required=True, type=positive_int, metavar="H")
    t.add_argument("--optimizer", choices=("sgd", "adam"), default="adam", help="sgd: the lecture's W := W − α ∂MSE/∂W")
    t.add_argument("--hyperparam", action="append", metavar="NAME=GRID",
                   help="another axis: slope (the sigmoid estimator's) or an optimizer keyword such as b1 (repeatable)")
    t.add_argument("--seeds", type=positive_int, default=64, metavar="K")
    t.add_argument("--ste", choices=("identity", "clipped", "sigmoid", "none"), default="sigmoid",
                   help="the straight-through estimator (none: the true step, whose gradient is zero)")
    t.add_argument("--slope", type=float, default=4.0, help="the sigmoid estimator's slope (default 4)")
    t.add_argument("--seed", type=int, default=0, help="the root random seed")
    _run_arguments(t, plot="DIR/training_curves.png")
    t.set_defaults(run=_train)
    return p


def _join_grid_values(argv: Sequence[str]) -> list:
    """``--w0 -2,2`` → ``--w0=-2,2``: argparse would take a grid starting with '-' for an option."""
    argv, joined = list(argv), []
    while argv:
        a = argv.pop(0)
        if a in ("--w0", "--learning-rate", "--hyperparam") and argv:
            a = f"{a}={argv.pop(0)}"
        joined.append(a)
    return joined


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = _join_grid_values(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        args.run(args)
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"jaxdescent {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxdescent {args.command}: interrupted; finished pieces are saved, rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
