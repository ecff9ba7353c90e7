"""Watching and stopping a sweep from Python: progress callbacks, a bar, and waits that Ctrl-C interrupts.

A sweep reports after each piece it finishes: ``progress(done, total)``, the
runs done so far and in all. ``progress=True`` (the default) shows a one-line
bar on stderr when someone is watching (a terminal, or a Jupyter or Colab
notebook) and nothing otherwise; ``False`` or ``None`` turns it off; any
callable receives the counts.

Python raises ``KeyboardInterrupt`` only between bytecodes, and a thread
blocked in XLA never returns to Python until its program ends. So the
engine dispatches its programs asynchronously and waits for them here, in
short sleeps that Ctrl-C interrupts. A call on one thread is abandoned at
once (the interrupt arrives within a fraction of a second; the program runs
to its end in the background); a call split over threads first lets them
end their share of the piece (seconds: pieces hold about 30 s of
*estimated* work on all cores, an overestimate). The piece in progress is not
saved; every finished piece is kept.
"""

import signal
import sys
import threading
import time
from typing import Callable, Optional, Union

POLL_SECONDS = 0.05

Progress = Union[bool, None, Callable[[int, int], object]]


def watching() -> bool:
    """Whether a person sees stderr: a terminal, or a notebook kernel (Jupyter, Colab)."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class Bar:
    """A one-line bar on stderr: runs done, elapsed time and the time left at the rate so far."""

    def __init__(self, desc: str = "sweep", stream=None, unit: str = "runs"):
        self.desc, self.stream, self.unit, self.started = desc, stream, unit, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        stream = self.stream or sys.stderr
        elapsed = time.monotonic() - self.started
        left = f", {elapsed * (total - done) / done:.0f} s left" if 0 < done < total else ""
        width = 24
        filled = width * done // max(total, 1)
        stream.write(f"\r{self.desc}: [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {self.unit}, "
                     f"{elapsed:.0f} s{left}  " + ("\n" if done >= total else ""))
        stream.flush()


def callback(progress: Progress, desc: str = "sweep", unit: str = "runs") -> Optional[Callable[[int, int], object]]:
    """The callback for a ``progress=`` argument (see the module docstring); ``None`` when there is none."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return Bar(desc, unit=unit) if watching() else None
    if not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable progress(done, total), got {progress!r}")
    return progress


def wait(arrays) -> None:
    """Blocks until every ``jax.Array`` in the list is computed, in sleeps that Ctrl-C interrupts.

    The sleeps start at 0.1 ms and double up to ``POLL_SECONDS``, so a short
    call (a GPU sweep of a few milliseconds) is not held up by the polling.
    """
    pause = 1e-4
    while not all(a.is_ready() for a in arrays if hasattr(a, "is_ready")):
        time.sleep(pause)
        pause = min(2 * pause, POLL_SECONDS)


def in_threads(task: Callable[[int], object], count: int) -> list:
    """``[task(0), ..., task(count - 1)]``, each in its own thread, waited for in sleeps Ctrl-C interrupts.

    On Ctrl-C the threads end their call (their share of one piece) before
    ``KeyboardInterrupt`` is raised: a process that exits while a thread is
    inside XLA can abort (seen: the CLI, twice Ctrl-C under load, exit status
    -6), as could a notebook's next call. Pieces are sized to a few seconds
    of work (``jaxdescent._cost``), so the interrupt follows within them.
    """
    results, errors = [None] * count, []

    def run(i):
        try:
            results[i] = task(i)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    _start(threads)
    try:
        for t in threads:
            while t.is_alive():
                t.join(POLL_SECONDS)
    except BaseException:  # Ctrl-C: the lanes end their call first (a lane inside XLA at exit aborts the process)
        for t in threads:
            t.join()
        raise
    if errors:
        raise errors[0]
    return results


def in_calls(call: Callable[[int], object], indices, threads: int) -> list:
    """``[call(i) for i in indices]``, shared among ``threads`` threads (each takes the next index when it is
    free), waited for in sleeps Ctrl-C interrupts (see :func:`in_threads`)."""
    indices = list(indices)
    if threads <= 1 or len(indices) == 1:
        return [call(i) for i in indices]
    results, lock, todo = [None] * len(indices), threading.Lock(), iter(range(len(indices)))

    def task(_):
        while True:
            with lock:
                n = next(todo, None)
            if n is None:
                return
            results[n] = call(indices[n])

    in_threads(task, min(threads, len(indices)))
    return results


def _start(threads) -> None:
    """Starts the threads with SIGINT held back until all have started (it is delivered right after).

    A Ctrl-C inside ``Thread.start`` could leave a thread started but not yet
    registered for the interpreter's exit to wait for; run on at exit, inside
    XLA, it would abort the process (seen: exit status -6 instead of 130).
    """
    hold = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hold else None
    try:
        for t in threads:
            t.start()
    finally:
        if hold:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
