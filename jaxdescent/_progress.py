"""Watching and stopping a sweep from Python: progress callbacks, a bar, and waits that Ctrl-C interrupts.

A sweep reports after each piece it finishes: ``progress(done, total)``, the
runs done so far and in all. ``progress=True`` (the default) shows a one-line
bar on stderr when someone is watching (a terminal, or a Jupyter or Colab
notebook) and nothing otherwise; ``False`` or ``None`` turns it off; any
callable receives the counts.

While a program compiles (30 s or more for a large one) the bar says so:
``"sweep: compiling <what>... 12 s"``, its seconds redrawn by a small thread
that the compile's end stops. The elapsed time counts the compile; the time
left does not: it is the runs' own pace since computing began (see
:class:`Bar`). The engine announces a compile with :func:`compiling`, which a
user's callable never sees.

Python raises ``KeyboardInterrupt`` only between bytecodes, and a thread
blocked in XLA never returns to Python until its program ends. So the
engine dispatches its programs asynchronously and waits for them here, in
short sleeps that Ctrl-C interrupts. On one thread the calls are abandoned
at once (the interrupt arrives within a fraction of a second; the programs
run to their end in the background); calls shared among threads first let
each thread end the call it is in (one chunk of runs) and start no other.
The piece in progress is not saved; every finished piece is kept.
"""

import contextlib
import inspect
import signal
import sys
import threading
import time
from typing import Callable, Optional, Union

from jaxdescent._validate import InvalidArgument

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
    """A one-line bar on stderr: runs done, elapsed time, and the time left at the runs' own pace.

    The elapsed time counts everything since the bar was made (tracing and
    compiling included); the time left counts only the runs' pace, measured
    from where computing began: the end of the first compile announced with
    :func:`compiling`, or else the first report. Runs already done there
    (pieces found on disk when a sweep resumes) are not part of the pace,
    and time spent in later compiles is left out of it. Before there is a
    pace there is no estimate.

    Args:
      desc: the bar's name, first on its line.
      stream: where it is drawn; ``sys.stderr`` (as it is at each write) if ``None``.
      unit: what is counted ("runs", "steps").
      clock: seconds, monotonic; ``time.monotonic`` if ``None`` (a test passes its own).
      tick: while a compile lasts, its seconds are redrawn this often; ``None``: only at its start and end.
    """

    def __init__(self, desc: str = "sweep", stream=None, unit: str = "runs", *,
                 clock: Optional[Callable[[], float]] = None, tick: Optional[float] = 1.0):
        self.desc, self.stream, self.unit, self.tick = desc, stream, unit, tick
        self._clock = clock or time.monotonic
        self.started = self._clock()
        self._lock = threading.RLock()  # the caller's thread and a compile's ticker draw on one line
        self._width = 0  # of the line drawn last, to blank its tail when a shorter one replaces it
        self._counts = None  # (done, total) reported last
        self._ended = False  # the last report was the last one: its line is finished
        self._anchor = None  # (time, done) where the pace is measured from
        self._compiled = False  # a compile has ended (the anchor is then at its end)
        self._compiles = []  # [what, started, a report came meanwhile], innermost last
        self._excluded = 0.0  # seconds of compiles after the anchor, not part of the pace

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            now = self._clock()
            for c in self._compiles:  # runs went on meanwhile (compiled in another thread): that time counts
                c[2] = True
            if self._anchor is None:
                self._anchor = (now, done)
            self._counts, self._ended = (done, total), done >= total
            self._draw(self._progress_line(now), end=self._ended)

    def time_left(self, done: int, total: int, now: Optional[float] = None) -> Optional[float]:
        """Seconds left at the pace since computing began (see the class docstring); ``None`` before there is one."""
        with self._lock:
            now = self._clock() if now is None else now
            if self._anchor is None or done >= total:
                return None
            since, at = self._anchor
            seconds = now - since - self._excluded
            if done <= at or seconds <= 0:
                return None
            return (total - done) * seconds / (done - at)

    @contextlib.contextmanager
    def compiling(self, what: str):
        """Shows ``"<desc>: compiling <what>..."`` (and its seconds, every ``tick``) while the block runs.

        Drawn at once while no count has been reported (the blank screen
        before a sweep's first piece); with a count on the line, only if the
        compile lasts a tick (a cached program, found again, compiles in
        milliseconds). Afterwards the counts are drawn again.
        """
        with self._lock:
            entry = [what, self._clock(), False]
            self._compiles.append(entry)
            if self._counts is None:
                self._draw(self._compiling_line(entry[1]))
        stop = threading.Event()
        ticker = None
        if self.tick:
            ticker = threading.Thread(target=self._ticking, args=(entry, stop), daemon=True)
            ticker.start()
        try:
            yield
        finally:
            stop.set()
            if ticker is not None:
                ticker.join()  # nothing is drawn by it from here on
            with self._lock:
                self._compiles.remove(entry)
                now = self._clock()
                if not self._compiles and not entry[2]:  # (with reports meanwhile, the runs' time went on)
                    if not self._compiled:  # the first compile's end: computing begins, after any pieces found
                        self._anchor, self._excluded = (now, 0 if self._counts is None else self._counts[0]), 0.0
                    elif self._anchor is not None:  # a later program (a rung, a static value): not the runs' pace
                        self._excluded += now - max(entry[1], self._anchor[0])
                self._compiled = self._compiled or not self._compiles
                if self._compiles:
                    self._draw(self._compiling_line(now))
                elif self._counts is not None and not self._ended:
                    self._draw(self._progress_line(now))
                elif self._counts is None:
                    self._draw(f"{self.desc}: compiled {what} in {now - entry[1]:.0f} s, running...")

    def _ticking(self, entry, stop) -> None:
        while not stop.wait(self.tick):
            with self._lock:
                if stop.is_set() or self._ended or self._compiles[-1:] != [entry]:
                    continue
                self._draw(self._compiling_line(self._clock()))

    def _compiling_line(self, now: float) -> str:
        what, started, _ = self._compiles[-1]
        seconds = now - started
        return f"{self.desc}: compiling {what}..." + (f" {seconds:.0f} s" if seconds >= 1 else "")

    def _progress_line(self, now: float) -> str:
        done, total = self._counts
        left = self.time_left(done, total, now)
        width = 24
        filled = width * done // max(total, 1)
        return (f"{self.desc}: [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {self.unit}, "
                f"{now - self.started:.0f} s" + ("" if left is None else f", {left:.0f} s left"))

    def _draw(self, line: str, end: bool = False) -> None:
        stream = self.stream or sys.stderr
        stream.write("\r" + line.ljust(self._width) + "  " + ("\n" if end else ""))
        stream.flush()
        self._width = 0 if end else len(line)


def compiling(report, what: str):
    """A context manager around a compile: a :class:`Bar` says ``"compiling <what>..."`` meanwhile.

    ``report`` is a progress callback (from :func:`callback`, or a
    :func:`relay` of one); a bar also leaves the compile's time out of its
    pace. Anything else (a user's ``progress(done, total)``, ``None``) is not
    called: the block just runs. Enter it right before the runs it compiles
    for are computed, after reporting any pieces found on disk: the bar's
    pace starts at the first compile's end.

    Examples:
      >>> import io
      >>> bar = Bar("sweep", stream=io.StringIO(), tick=None)
      >>> with compiling(bar, "fn over 8 runs"):
      ...     pass
      >>> bar.stream.getvalue().split("\\r")[1].strip()
      'sweep: compiling fn over 8 runs...'
      >>> with compiling(lambda done, total: None, "fn"):  # a user's callable: nothing to show
      ...     pass
    """
    target = report.target if isinstance(report, Relay) else report
    return target.compiling(what) if isinstance(target, Bar) else contextlib.nullcontext()


class Relay:
    """A progress callback made from another one: calls ``fn(done, total)``; :func:`compiling` reaches ``target``."""

    def __init__(self, target, fn: Callable[[int, int], object]):
        self.target, self.fn = target, fn

    def __call__(self, done: int, total: int):
        return self.fn(done, total)


def relay(report, fn: Callable[[int, int], object]) -> Callable[[int, int], object]:
    """``fn``, a callback that rescales counts and passes them to ``report``, keeping ``report``'s compile notices.

    ``fn`` itself unless ``report`` is a bar (or a relay of one): a user's
    callable stays plain, called only as ``(done, total)``. Examples: the
    static values' sub-sweeps, successive halving's rungs.
    """
    if isinstance(report, Relay):
        return Relay(report.target, fn)
    return Relay(report, fn) if isinstance(report, Bar) else fn


def callback(progress: Progress, desc: str = "sweep", unit: str = "runs") -> Optional[Callable[[int, int], object]]:
    """The callback for a ``progress=`` argument (see the module docstring); ``None`` when there is none."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return Bar(desc, unit=unit) if watching() else None
    if not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable progress(done, total), got {progress!r}")
    try:
        signature = inspect.signature(progress)
    except (TypeError, ValueError):  # no signature to read (some builtins): it is called as it is
        return progress
    try:
        signature.bind(0, 0)
    except TypeError as e:  # else it would fail at the first report, after compiling, without naming progress
        raise InvalidArgument(f"progress must be callable as progress(done, total), but {progress!r} with the "
                              f"signature {signature} cannot be: {e}") from None
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


def in_calls(call: Callable[[object], object], args: list, threads: int) -> list:
    """``[call(a) for a in args]``, shared among ``threads`` threads (each takes the next call when it is free),
    waited for in sleeps Ctrl-C interrupts.

    On Ctrl-C no thread starts another call, and each ends the one it is in
    (one chunk of runs) before ``KeyboardInterrupt`` is raised: a process that
    exits while a thread is inside XLA aborts ("FATAL: exception not
    rethrown"), as could a notebook's next call. A second Ctrl-C raises at
    once; the threads end their call before the interpreter exits.

    The threads are waited for by an event each, never by ``Thread.join``: on
    Python 3.11 a join that Ctrl-C interrupts marks the running thread as
    ended, so the interpreter's exit no longer waits for it (seen: a worker
    inside ``block_until_ready`` at exit, exit status -6).
    """
    if threads <= 1 or len(args) == 1:
        return [call(a) for a in args]
    results, errors, lock, todo, stop = [None] * len(args), [], threading.Lock(), iter(range(len(args))), []
    ended = [threading.Event() for _ in range(min(threads, len(args)))]

    def run(done):
        try:
            while not stop and not errors:
                with lock:
                    n = next(todo, None)
                if n is None:
                    return
                results[n] = call(args[n])
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            errors.append(e)
        finally:
            done.set()

    _start([threading.Thread(target=run, args=(done,)) for done in ended])
    try:
        for done in ended:
            while not done.wait(POLL_SECONDS):
                pass
    except BaseException:  # Ctrl-C: the threads end their call first (a thread inside XLA at exit aborts)
        stop.append(True)
        for done in ended:
            done.wait()
        raise
    if errors:
        raise errors[0]
    return results


@contextlib.contextmanager
def held_interrupt():
    """Ctrl-C within the block is raised when it ends: for a compile, which must not be left half done.

    JAX compiles on a thread of its own and waits for it in a way Ctrl-C
    interrupts; a process that then exits while the compile goes on crashes
    (seen: SIGSEGV inside ``CompileAndLoad``, 2 of 50 SIGINTs into a script).
    The handler in place is still called at once (the command line's starts
    its deadline there); only the ``KeyboardInterrupt`` it raises waits. Only
    in the main thread (signal handlers live there); elsewhere the block just runs.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    pending = []

    def record(signum, frame):
        try:
            previous(signum, frame)
        except KeyboardInterrupt:
            pending.append(signum)

    signal.signal(signal.SIGINT, record)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


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
