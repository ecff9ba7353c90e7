"""Ctrl-C at random moments: SIGINT into the command line and into a script calling sweep_fn(out=...).

Each try starts a fresh process, sends SIGINT at a moment drawn uniformly
from launch to about the run's length, and records the exit status, the
seconds from SIGINT to exit, the lines on stderr and whether the process
aborted (SIGABRT: "FATAL: exception not rethrown") or crashed (SIGSEGV).
The tries whose SIGINT came once the run had begun (its folder's config.json
written: imports, checks and tracing done) are summarised apart: before, while
Python imports JAX (about a second), Python's own handler applies.

    python experiments/ctrl_c.py --tries 100            # half the CLI, half the script
    python experiments/ctrl_c.py --tries 10 --resume    # and each interrupted folder resumes to the end
"""

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxdescent

    def run(hp, key):  # a small MLP's full-batch descent, about 10 s in all on 2 cores
        w = jax.random.normal(key, (64, 64)) * 0.1
        x = jnp.ones((32, 64))
        loss = lambda w: jnp.mean(jnp.tanh(x @ w) ** 2)
        w = jax.lax.fori_loop(0, 6000, lambda i, w: w - hp["lr"] * jax.grad(loss)(w), w)
        return {"loss": loss(w)}

    jaxdescent.sweep_fn(run, {"lr": np.linspace(0.01, 1, 384)}, out=sys.argv[1], progress=False)
""")
CLI = ["-P", "-m", "jaxdescent.cli", "sweep", "--loss", "sextic", "--learning-rate", "logspace:-4:0:2000",
       "--w0", "linspace:-2:2:64", "--num-steps", "400000", "--quiet", "--out"]


def one(kind: str, moment: float, resume: bool) -> dict:
    out = Path(tempfile.mkdtemp()) / "o"
    cmd = [sys.executable, *CLI, str(out)] if kind == "cli" else [sys.executable, "-c", SCRIPT, str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAXDESCENT_COMPILATION_CACHE="0")
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(moment)
    began = (out / "config.json").exists()  # the run had begun: imports, checks and tracing done
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    row = {"kind": kind, "moment": round(sent - started, 2), "status": proc.returncode,
           "seconds": round(time.time() - sent, 2), "lines": len(err.strip().splitlines()),
           "started": began,
           "last": (err.strip().splitlines() or [""])[-1][:100]}
    if resume and proc.returncode != 0:
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        row["resumed"] = again.returncode
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tries", type=int, default=100)
    p.add_argument("--longest", type=float, default=6.0, help="SIGINT moments are drawn from [0, LONGEST] s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="rerun each interrupted folder to the end")
    args = p.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.tries):
        row = one("cli" if i % 2 == 0 else "script", rng.uniform(0, args.longest), args.resume)
        rows.append(row)
        print(i, row, flush=True)
    for kind in ("cli", "script"):
        mine = [r for r in rows if r["kind"] == kind]
        statuses = collections.Counter(r["status"] for r in mine)
        running = [r for r in mine if r["started"]]
        print(f"{kind}: {len(mine)} tries, exit statuses {dict(statuses)}; "
              f"aborts (-6) {statuses[-signal.SIGABRT]}, crashes (-11) {statuses[-signal.SIGSEGV]}; "
              f"after the run began: {len(running)} tries, slowest exit "
              f"{max((r['seconds'] for r in running), default=0):.2f} s, "
              f"more than one line {sum(r['lines'] > 1 for r in running)}"
              + (f", resumed to the end {sum(r.get('resumed') == 0 for r in mine)}" if args.resume else ""))


if __name__ == "__main__":
    main()
