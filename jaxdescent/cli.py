"""The ``jaxdescent`` command: the lecture reproduced, sweeps and step-network trainings saved to a folder.

Every argument is checked before the output folder is touched. A bad argument,
a folder that holds something else, or one that cannot be written is one line
on stderr and exit status 2; Ctrl-C is one line saying what was kept, exit
status 130; anything else is a bug, shown as a traceback, exit status 1.
"""

import argparse
import contextlib
import difflib
import importlib
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
import traceback
from typing import Optional, Sequence

import numpy as np

from jaxdescent import results
from jaxdescent._validate import InvalidArgument, check_memory, human_bytes

OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
MAX_STEPS = 2**31 - 2  # step counters are int32 on the device, and 2**31 - 1 marks "never" (_sweep.NEVER)
MAX_RUNS = 2**31 - 1  # so are run numbers
MAX_POINTS = 10**8  # values in one grid: 800 MB as float64, before any run
SEED_BITS = 32  # jax.random.key keeps the low 32 bits of a seed (without x64): larger seeds would collide


# ---------------------------------------------------------------- parsing


def parse_grid(text: str, name: str) -> np.ndarray:
    """``linspace:START:STOP:NUM``, ``logspace:START:STOP:NUM`` (exponents, as NumPy) or ``a,b,c``.

    ``logspace:-4:0:20`` is 20 values from 1e-4 to 1; a bound between 0 and 1, which
    reads as a value rather than an exponent (``logspace:1e-4:1:20``), is refused.

    For 2-D start points: points separated by ``;`` (``-8,7;1,2``) or the product
    of two grids joined by `` x `` (``linspace:-2:2:5 x linspace:-2:2:5``).
    """
    text = text.strip()
    if " x " in text:
        axes = [parse_grid(part, name) for part in text.split(" x ")]
        if any(a.ndim != 1 for a in axes):
            raise InvalidArgument(f"{name}: each factor of 'GRID x GRID' must be a 1-D grid, got {text!r}")
        _check_points(name, math.prod(len(a) for a in axes), text)
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)
    try:
        with np.errstate(all="ignore"):
            if ";" in text:
                points = [[float(v) for v in p.split(",")] for p in text.split(";") if p.strip()]
                grid = np.asarray(points, dtype=np.float64)
            elif text.partition(":")[0] in ("linspace", "logspace"):
                kind, start, stop, num = text.split(":")
                num = int(num)
                if num < 1:
                    raise ValueError
                _check_points(name, num, text)
                start, stop = float(start), float(stop)
                if kind == "logspace":
                    _check_exponents(name, text, start, stop, num)
                grid = getattr(np, kind)(start, stop, num)
            else:
                grid = np.asarray([float(v) for v in text.split(",")], dtype=np.float64)
    except InvalidArgument:
        raise
    except ValueError:
        raise InvalidArgument(
            f"{name}: cannot read grid {text!r}; use linspace:START:STOP:NUM, logspace:START:STOP:NUM "
            "or a comma list such as 0.1,0.01") from None
    if grid.size == 0 or grid.ndim not in (1, 2):
        raise InvalidArgument(f"{name}: cannot read grid {text!r}: no values")
    if not np.all(np.isfinite(grid)):
        raise InvalidArgument(f"{name}: every value must be finite, got {text!r}")
    return grid


def _check_exponents(name: str, text: str, start: float, stop: float, num: int) -> None:
    """Refuses ``logspace:`` bounds that read as values (``logspace:1e-4:1:20``), not exponents.

    A bound strictly between 0 and 1 is a fractional power of ten near 1 (10**1e-4 is
    1.0002): almost surely the value itself was meant, and the grid would run from 1
    to 10 instead.
    """
    if any(0 < b < 1 for b in (start, stop)):
        hint = f"logspace:{math.log10(start):g}:{math.log10(stop):g}:{num}" if start > 0 and stop > 0 else None
        raise InvalidArgument(
            f"{name}: logspace:START:STOP:N takes exponents: logspace:-4:0:20 for 1e-4..1; {text!r} would give "
            f"{np.power(10.0, start):g}..{np.power(10.0, stop):g}" + (f" (for {start:g}..{stop:g} write {hint})" if hint else ""))


def _check_points(name: str, num: int, text: str) -> None:
    if num > MAX_POINTS:
        raise InvalidArgument(f"{name}: {num:,} points in {text!r} is more than {MAX_POINTS:,}; use fewer")


def float32(grid: np.ndarray, name: str, *, positive: bool = False) -> np.ndarray:
    """``grid`` in the runs' dtype, float32; refused if a value overflows (or, if ``positive``, underflows to 0)."""
    with np.errstate(all="ignore"):
        out = grid.astype(np.float32)
    if not np.all(np.isfinite(out)):
        bad = grid[~np.isfinite(out)].ravel()[0]
        raise InvalidArgument(
            f"{name}: {bad:g} is beyond float32 (the runs' dtype, largest {np.finfo(np.float32).max:g})")
    if positive and np.any(out <= 0):
        bad = grid[out <= 0].ravel()[0]
        raise InvalidArgument(f"{name}: {bad:g} is not > 0 in float32 (the runs' dtype, smallest "
                              f"{np.finfo(np.float32).smallest_subnormal:g})")
    return out


def learning_rates(text: str) -> np.ndarray:
    """``--learning-rate``'s grid, each finite and > 0 (in float32)."""
    grid = parse_grid(text, "--learning-rate")
    if grid.ndim != 1 or np.any(grid <= 0):
        raise InvalidArgument(f"--learning-rate: every learning rate must be finite and > 0, got {text!r}")
    return float32(grid, "--learning-rate", positive=True)


def resolve_loss(name: str):
    """A loss of ``jaxdescent.losses`` by name, or ``module:function``."""
    from jaxdescent import losses

    if ":" in name:
        module, _, attr = name.partition(":")
        saved = list(sys.path)
        sys.path.insert(0, os.getcwd())  # for the import only: afterwards the current directory is not searched
        try:
            loaded = importlib.import_module(module)
        except SystemExit as e:
            raise InvalidArgument(f"--loss: importing {module!r} called sys.exit({e.code!r})") from None
        except Exception as e:  # not found, a SyntaxError, anything the module raises as it runs
            raise InvalidArgument(f"--loss: cannot import {module!r}: {type(e).__name__}: {e}") from None
        finally:
            sys.path[:] = saved
        if not hasattr(loaded, attr):
            raise InvalidArgument(f"--loss: module {module!r} has no {attr!r}")
        fn = getattr(loaded, attr)
    else:
        known = sorted(n for n in dir(losses) if not n.startswith("_") and callable(getattr(losses, n))
                       and not n.endswith(("_grad", "_hessian")) and n not in ("ArrayLike",)
                       and getattr(getattr(losses, n), "__module__", "") == losses.__name__)
        if name not in known:
            raise InvalidArgument(
                f"--loss: unknown loss {name!r}; choose one of {', '.join(known)} or give module:function")
        fn = getattr(losses, name)
    if not callable(fn):
        raise InvalidArgument(f"--loss: {name!r} is not a function")
    return fn


def check_loss(loss_fn, w0: np.ndarray, args) -> None:
    """Raises unless ``loss_fn`` maps one start point of ``w0`` to a real scalar and can be differentiated there."""
    import jax

    from jaxdescent import _validate

    point = jax.ShapeDtypeStruct(w0.shape[1:], np.float32)
    try:
        _validate.scalar_loss(loss_fn, point, name=f"--loss {args.loss}")
        jax.eval_shape(jax.grad(loss_fn), point)
    except InvalidArgument as e:
        raise InvalidArgument(f"{e} (one --w0 start point has shape {w0.shape[1:]})") from None
    except (Exception, SystemExit) as e:
        raise InvalidArgument(f"--loss {args.loss}: cannot differentiate it at a start point of shape "
                              f"{w0.shape[1:]}: {type(e).__name__}: {e}") from None


def check_optimizer(name: str, factory, hps: dict, reserved: Sequence[str]) -> None:
    """Raises unless ``factory(learning_rate=α, **hps)`` builds and runs one step with traced values."""
    import jax
    import jax.numpy as jnp

    for hp in hps:
        if hp in reserved:
            raise InvalidArgument(f"--hyperparam {hp}: the name is taken ({', '.join(reserved)}); use another")

    def one_step(learning_rate, hp):
        tx = factory(learning_rate=learning_rate, **hp)
        params = jnp.zeros(3)
        updates, _ = tx.update(params, tx.init(params), params)
        return updates

    scalar = jax.ShapeDtypeStruct((), np.float32)
    try:
        closed = jax.make_jaxpr(one_step)(scalar, {k: scalar for k in hps})
    except Exception as e:
        raise InvalidArgument(f"--hyperparam: --optimizer {name} does not take {', '.join(hps) or 'it'} as a traced "
                              f"value: {type(e).__name__}: {e}") from None
    # An axis the step never reads gives identical results along it (sgd without momentum ignores nesterov).
    jaxpr = closed.jaxpr
    read = {id(v) for eqn in jaxpr.eqns for v in eqn.invars} | {id(v) for v in jaxpr.outvars}
    for hp, var in zip(sorted(hps), jaxpr.invars[1:]):  # the dict's leaves come in sorted order
        if id(var) not in read:
            raise InvalidArgument(f"--hyperparam {hp}: --optimizer {name} does not use it (every value would give "
                                  "the same runs); sweep a hyperparameter the optimizer reads")


def count_runs(name: str, sizes: dict) -> int:
    """The number of runs of a grid (``axis → length``), refused beyond ``MAX_RUNS``."""
    runs = math.prod(sizes.values())
    if runs > MAX_RUNS:
        shape = " × ".join(f"{n} {k}" for k, n in sizes.items())
        raise InvalidArgument(f"{name}: the grid has {runs:,} runs ({shape}), more than {MAX_RUNS:,}; "
                              "use fewer values or split it into several commands")
    return runs


def need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidArgument('--plot and reproduce --out need matplotlib: pip install "jaxdescent[plot]"') from None


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
            raise InvalidArgument(f"--hyperparam: expected NAME=GRID such as momentum=0.0,0.5,0.9, got {item!r}")
        if name in out:
            raise InvalidArgument(f"--hyperparam: {name!r} given twice")
        values = parse_grid(grid, f"--hyperparam {name}")
        if values.ndim != 1:
            raise InvalidArgument(f"--hyperparam {name}: expected a 1-D grid, got {grid!r}")
        out[name] = float32(values, f"--hyperparam {name}")
    return out


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def num_steps(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_STEPS:,} (int32 step counters), got {value}")
    return value


def seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**SEED_BITS:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**{SEED_BITS} - 1 (larger seeds would collide), "
                                         f"got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text}")
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
    """A progress callback that draws a bar on stderr, unless quiet or not a terminal (see jaxdescent._progress)."""
    from jaxdescent import _progress

    return None if quiet or not sys.stderr.isatty() else _progress.Bar(desc)


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
        table.append((r.quantity, lecture, _number(r.float32, shown), _number(r.float64, shown), mark[r.agrees],
                      r.note))
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:5], widths[1:])]
        lines.append("  ".join(cells + [line[5]]).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# ---------------------------------------------------------------- commands


def _reproduce(args) -> None:
    import contextlib

    from jaxdescent.lecture import reproduce

    out = None
    if args.out is not None:
        need_matplotlib()
        out = args.out_dir = results.folder(args.out)
    with contextlib.ExitStack() as owned:
        if out is not None:  # refused (or owned) before anything is computed
            owned.enter_context(results.lock(out))
            results.prepare(out, {"subcommand": "reproduce"})
        rows = reproduce()
        as_json = json.dumps([dict(r._asdict(), agrees=r.agrees) for r in rows], indent=1, allow_nan=True)
        table = format_rows(rows) + (
            '\n\n"same": float32 matches the slide at the slide\'s precision. '
            "Iterates are numbered from 0 (the start w = 1.9).")
        print(as_json if args.json else table)
        if out is not None:
            from jaxdescent.plot import lecture_figures

            results.save_text(out / "lecture.txt", table + "\n")
            results.save_text(out / "lecture.json", as_json + "\n")
            figures = lecture_figures()
            for name, fig in figures.items():
                results.save_figure(out / f"{name}.png", fig, dpi=110)
            results.remove_temporaries(out, ["config.json", "lecture.txt", "lecture.json",
                                             *(f"{name}.png" for name in figures)])  # left by a killed run
    if out is not None and not args.quiet:
        print(f"\ntable and figures written to {out}/", file=sys.stderr)


def _sweep(args) -> None:
    from jaxdescent import sweep

    _fast_path()
    started = time.time()
    loss_fn = resolve_loss(args.loss)
    learning_rate = learning_rates(args.learning_rate)
    w0 = float32(parse_grid(args.w0, "--w0"), "--w0")
    hps = hyperparams(args.hyperparam)
    check_loss(loss_fn, w0, args)
    factory = optimizer_factory(args.optimizer)
    check_optimizer(args.optimizer, factory, hps, reserved=("learning_rate", "w0", "seed", "point"))
    num_runs = count_runs("sweep", {"learning_rate": len(learning_rate), **{k: len(v) for k, v in hps.items()},
                                    "w0": len(w0)})
    per_run = 4 * math.prod(w0.shape[1:]) + 4 + 1 + 4 + 4  # final_w, final_loss, diverged, the two steps
    check_memory("sweep", 2 * num_runs * per_run, f"{num_runs:,} runs' results ({per_run} bytes each, held twice "
                 "as the pieces are joined)", "use fewer learning rates, start points or hyperparameter values, or "
                 "split the grid into several commands")
    if args.plot:
        need_matplotlib()
    out = args.out_dir = results.folder(args.out)
    with results.lock(out):  # owned from before config.json is read until the last file is written
        r = sweep(loss_fn, w0=w0, learning_rate=learning_rate, num_steps=args.num_steps, optimizer=factory,
                  hyperparams=hps, out=out, piece_runs=args.piece_runs, progress=progress_bar(args.quiet, "sweep"),
                  stop_early=args.stop_early)
        config = {"subcommand": "sweep", "loss": args.loss, "learning_rate": args.learning_rate, "w0": args.w0,
                  "num_steps": args.num_steps, "optimizer": args.optimizer, "hyperparams": args.hyperparam or [],
                  "stop_early": args.stop_early}
        results.save_json(out / "meta.json", run_meta(args, started, **config, axes=list(r.axes), runs=num_runs))
        if args.csv:
            results.write_csv(out / "results.csv", r.columns, num_runs)
        if args.plot:
            from jaxdescent import plot

            fig = plot.sweep_figure(r, title=f"{args.loss}, {args.num_steps} steps, {args.optimizer}")
            results.save_figure(out / ("phase_diagram.png" if w0.ndim == 1 else "final_state.png"), fig, dpi=110)
        # what a killed run's writes left (run_pieces removes its own)
        results.remove_temporaries(out, ["meta.json", "results.csv", "phase_diagram.png", "final_state.png"])
    diverged = np.asarray(r.diverged)
    converged = np.asarray(r.converged_step) >= 0
    print(f"{num_runs} runs of {args.num_steps} steps: {int(converged.sum())} converged, "
          f"{int(diverged.sum())} diverged, {int((~converged & ~diverged).sum())} neither; "
          f"{time.time() - started:.1f} s; results in {out}/results.npz")


def _run_arguments(p: argparse.ArgumentParser, *, plot: str) -> None:
    """The arguments ``sweep`` and ``train`` share."""
    p.add_argument("--learning-rate", required=True, metavar="GRID",
                   help="linspace:A:B:N, logspace:A:B:N (exponents: 10**A to 10**B, logspace:-4:0:20 is 1e-4..1) "
                        "or a,b,c")
    p.add_argument("--num-steps", required=True, type=num_steps, metavar="N")
    p.add_argument("--out", required=True, metavar="DIR", help="the results folder (a rerun resumes there)")
    p.add_argument("--plot", action="store_true", help=f"write {plot}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr, flags are never abbreviated, and an unknown flag is named.

    Without ``allow_abbrev=False`` argparse takes a prefix (``--learning-rat``) for
    the flag it starts; every parser here, subcommands included, is built as a
    ``_Parser``. argparse reports a missing required flag before an unknown one,
    so a misspelt ``--learnig-rate`` would read as "required: --learning-rate":
    an unknown flag is refused first, with the closest known one.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        for arg in sys.argv[1:] if args is None else args:
            if arg == "--" or self._subparsers is not None and not arg.startswith("-"):
                break  # the rest is a subcommand's, checked by its own parser
            flag = arg.partition("=")[0]
            if flag.startswith("--") and flag not in self._option_string_actions:
                known = [s for s in self._option_string_actions if s.startswith("--")]
                close = difflib.get_close_matches(flag, known, n=1)
                self.error(f"unrecognized arguments: {flag}" + (f" (did you mean {close[0]}?)" if close else ""))
        return super().parse_known_args(args, namespace)

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
            raise InvalidArgument(f"--dataset: parity needs a bit count, as parity:6, got {name!r}") from None
        if not 1 <= n <= 20:
            raise InvalidArgument(f"--dataset: parity:N needs N from 1 to 20 (2^N patterns), got {name!r}")
        return (*datasets.parity(n), None, None)
    if name == "digits":
        try:
            return datasets.digits()
        except ImportError as e:
            raise InvalidArgument(f"--dataset digits: {e}") from None
    raise InvalidArgument(f"--dataset: unknown dataset {name!r}; choose xor, parity:N or digits")


def _train(args) -> None:
    import jax
    import jax.numpy as jnp

    from jaxdescent import _engine, network, sweep_fn

    _fast_path()
    started = time.time()
    x, y, x_test, y_test = load_dataset(args.dataset)
    axes = {"learning_rate": learning_rates(args.learning_rate), **hyperparams(args.hyperparam)}
    factory = optimizer_factory(args.optimizer)
    ste = None if args.ste == "none" else args.ste
    labels_test = None if y_test is None else np.argmax(np.asarray(y_test), -1)

    def run(hp, key):
        opt = {k: v for k, v in hp.items() if k not in ("learning_rate", "slope")}
        params, history = network.train(key, x, y, n_hidden=args.hidden, num_steps=args.num_steps, ste=ste,
                                        optimizer=factory(learning_rate=hp["learning_rate"], **opt),
                                        **({"slope": hp.get("slope", args.slope)} if ste == "sigmoid" else {}))
        metrics = history._asdict()
        if x_test is not None:
            metrics["test_accuracy"] = jnp.mean(network.predict(params, x_test) == labels_test)
        return metrics

    if "slope" in axes and ste != "sigmoid":
        raise InvalidArgument("--hyperparam slope: the slope is used only by --ste sigmoid")
    if "slope" in axes and np.any(axes["slope"] <= 0):
        raise InvalidArgument("--hyperparam slope: every slope must be > 0")
    check_optimizer(args.optimizer, factory, {k: v for k, v in axes.items() if k not in ("learning_rate", "slope")},
                    reserved=("learning_rate", "seed", "point"))
    num_runs = count_runs("train", {**{k: len(v) for k, v in axes.items()}, "seeds": args.seeds})
    (n, n_in), n_out, h = np.shape(x), np.shape(y)[1], args.hidden
    examples = n + (0 if x_test is None else len(x_test))
    per_run = (args.num_steps + 1) * 12 + 8  # loss, accuracy, exact per step; solved_step, test_accuracy
    weights = (n_in + 1) * h + (h + 1) * n_out
    working = 4 * (4 * weights + 3 * examples * h)  # weights, gradients, optimizer state; activations
    at_once = min(num_runs, _engine.CHUNK_SIZE)
    check_memory(f"--hidden {h}, --num-steps {args.num_steps}", at_once * working + 2 * num_runs * per_run,
                 f"{at_once:,} trainings at once ({human_bytes(working)} of weights, optimizer state and "
                 f"activations each) and {num_runs:,} results ({human_bytes(per_run)} each)",
                 "use a smaller --hidden, fewer --num-steps, --seeds or learning rates")
    scalar = jax.ShapeDtypeStruct((), np.float32)
    try:
        jax.eval_shape(run, {k: scalar for k in axes}, jax.ShapeDtypeStruct((), jax.random.key(0).dtype))
    except Exception as e:
        raise InvalidArgument(f"train: these settings do not build a training: {type(e).__name__}: {e}") from None
    if args.plot:
        need_matplotlib()
    out = args.out_dir = results.folder(args.out)
    with results.lock(out):
        r = sweep_fn(run, axes, seeds=args.seeds, key=jax.random.key(args.seed), out=out)
        config = {"subcommand": "train", "dataset": args.dataset, "hidden": args.hidden, "optimizer": args.optimizer,
                  "learning_rate": args.learning_rate, "hyperparams": args.hyperparam or [], "seeds": args.seeds,
                  "num_steps": args.num_steps, "ste": args.ste, "slope": args.slope, "seed": args.seed}
        results.save_json(out / "meta.json", run_meta(args, started, **config, axes=list(r.axes)))
        m = {k: np.asarray(v) for k, v in r.metrics.items()}
        if args.plot:
            from jaxdescent import plot

            flat = lambda a: a.reshape((-1,) + a.shape[-2:])  # one curve group per point of the grid
            names = [", ".join(f"{k} = {row[k]:g}" for k in axes)
                     for row in r.to_pandas().iloc[::args.seeds].to_dict("records")]
            fig = plot.training_curves(flat(m["loss"]), flat(m["accuracy"]), names,
                                       title=f"{args.dataset}, {args.hidden} hidden, {args.optimizer}, ste={args.ste}")
            results.save_figure(out / "training_curves.png", fig, dpi=110)
        results.remove_temporaries(out, ["meta.json", "training_curves.png"])  # left by a killed run
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
    s.add_argument("--loss", required=True,
                   help="a loss of jaxdescent.losses (sextic, quadratic, bowl, himmelblau) or module:function")
    s.add_argument("--w0", required=True, metavar="GRID",
                   help="start points: a grid, or for 2-D losses 'x1,y1;x2,y2' or 'GRID x GRID'")
    s.add_argument("--optimizer", choices=OPTIMIZERS, default="gd",
                   help="gd: the lecture's w := w − α∇ (default); sgd: optax.sgd; momentum: sgd with 0.9; adam")
    s.add_argument("--hyperparam", action="append", metavar="NAME=GRID",
                   help="another axis: an optimizer keyword and its grid, e.g. momentum=0.0,0.5,0.9 (repeatable)")
    _run_arguments(s, plot="DIR/phase_diagram.png")
    s.add_argument("--piece-runs", type=positive_int, default=None, metavar="N",
                   help="runs per saved piece (default: about 30 s of estimated work)")
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
    t.add_argument("--dataset", required=True,
                   help="xor, parity:N (all 2^N patterns, ±1) or digits (needs scikit-learn)")
    t.add_argument("--hidden", required=True, type=positive_int, metavar="H")
    t.add_argument("--optimizer", choices=("sgd", "adam"), default="adam", help="sgd: the lecture's W := W − α ∂MSE/∂W")
    t.add_argument("--hyperparam", action="append", metavar="NAME=GRID",
                   help="another axis: slope (the sigmoid estimator's) or an optimizer keyword such as b1 (repeatable)")
    t.add_argument("--seeds", type=positive_int, default=64, metavar="K")
    t.add_argument("--ste", choices=("identity", "clipped", "sigmoid", "none"), default="sigmoid",
                   help="the straight-through estimator (none: the true step, whose gradient is zero)")
    t.add_argument("--slope", type=positive_float, default=4.0, help="the sigmoid estimator's slope (default 4)")
    t.add_argument("--seed", type=seed, default=0, help="the root random seed, from 0 to 2**32 - 1")
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


def _interrupted(args) -> str:
    """What a Ctrl-C left behind, in words."""
    out = getattr(args, "out_dir", None)
    if out is None:
        return "nothing was written"
    if (out / "results.npz").exists():
        return f"the results are complete in {out}/results.npz; rerun the same command to write the rest"
    return f"{results.kept(out)}; rerun the same command to resume from them"


def _compilation_cache() -> None:
    """Each command is a fresh process: keep its compiled programs on disk so the next one compiles nothing.

    Off with JAXDESCENT_COMPILATION_CACHE=0; a cache folder the user set is kept (see jaxdescent._cache).
    A default folder that cannot be written is one line on stderr, and the command runs uncached.
    """
    from jaxdescent import _cache

    try:
        _cache.use_by_default()
    except ValueError as e:
        print(f"jaxdescent: compiled programs are not kept on disk: {e}", file=sys.stderr)


GRACE_SECONDS = 1.5  # after Ctrl-C, the command's own way out (the call in progress ends) before the hard exit


class CtrlC:
    """The command's SIGINT handler, from its first line to its exit: out within ``GRACE_SECONDS``, one line, 130.

    Each Ctrl-C raises ``KeyboardInterrupt`` (the sweep stops after the call in
    progress, about 0.2 s of work, keeping every finished run). The first also
    starts a deadline: a command not out by then (in a compile, which the
    engine lets end first, or a ``KeyboardInterrupt`` lost inside a garbage
    collector callback) says its line, drops its folder's lock and exits with
    ``os._exit(130)``, which ends XLA's threads where they are instead of
    unwinding them (an unwound thread inside XLA aborts the process). Files
    are replaced only by renames, so nothing saved is torn.
    """

    def __init__(self, args):
        self.args, self.pressed, self.said, self.lock = args, False, False, threading.Lock()

    def __call__(self, signum, frame):
        if not self.pressed:
            self.pressed = True
            threading.Thread(target=self._deadline, daemon=True).start()
        raise KeyboardInterrupt

    def say(self) -> None:
        """The one line, once."""
        with self.lock:
            if not self.said:
                self.said = True
                print(f"jaxdescent {self.args.command}: interrupted; {_interrupted(self.args)}", file=sys.stderr,
                      flush=True)

    def _deadline(self) -> None:
        time.sleep(GRACE_SECONDS)
        self.say()
        out = getattr(self.args, "out_dir", None)
        with contextlib.suppress(OSError):
            if out is not None and (out / results.LOCK).read_text().strip() == str(os.getpid()):
                (out / results.LOCK).unlink()
        os._exit(130)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command; returns its exit status (0, 2: a bad argument or folder, 130: Ctrl-C, 1: a bug)."""
    argv_given = argv
    argv = _join_grid_values(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    ctrl_c = CtrlC(args)
    handles = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, ctrl_c) if handles else None
    try:
        _compilation_cache()
        args.run(args)
    except (InvalidArgument, OSError) as e:  # the caller's mistake, or the disk's: one line
        print(f"jaxdescent {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        ctrl_c.say()
        return 130
    except Exception:  # anything else is a bug: show where
        traceback.print_exc()
        print(f"jaxdescent {args.command}: internal error: please report it with the command and the traceback above",
              file=sys.stderr)
        return 1
    finally:
        if handles:  # the program (argv from sys.argv) is ending, or stopping after a Ctrl-C (the deadline
            # holds): a Ctrl-C from here on is ignored; a caller of main([...]) (a test) gets its handler back
            program = argv_given is None or ctrl_c.pressed
            signal.signal(signal.SIGINT, signal.SIG_IGN if program else previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
