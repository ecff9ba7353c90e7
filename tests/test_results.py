import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxdescent import results


def test_save_load_roundtrip(tmp_path):
    arrays = {"final_w": np.arange(6.0).reshape(2, 3), "diverged": np.array([[True, False, False]] * 2)}
    results.save(tmp_path, arrays, {"command": "x", "seconds": 1.5})
    back = results.load(tmp_path)
    assert back.meta == {"command": "x", "seconds": 1.5}
    for k, v in arrays.items():
        np.testing.assert_array_equal(back.arrays[k], v)
        assert back.arrays[k].dtype == v.dtype
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_load_never_unpickles(tmp_path):
    np.savez(tmp_path / "results.npz", evil=np.array([object()], dtype=object))
    results.save_json(tmp_path / "meta.json", {})
    with pytest.raises(ValueError, match="pickle"):
        results.load(tmp_path).arrays["evil"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.npz"
    results.save_arrays(path, {"x": np.ones(3)})

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        results.save_arrays(path, {"x": np.zeros(3), "y": Boom()})
    np.testing.assert_array_equal(results.load_arrays(path)["x"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_prepare_refuses_another_run(tmp_path):
    results.prepare(tmp_path, {"loss": "sextic", "num_steps": 10})
    results.prepare(tmp_path, {"loss": "sextic", "num_steps": 10})  # the same run: resume
    with pytest.raises(ValueError, match="num_steps"):
        results.prepare(tmp_path, {"loss": "sextic", "num_steps": 11})
    assert json.loads((tmp_path / "config.json").read_text())["num_steps"] == 10


def test_prepare_unwritable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="cannot create"):
        results.prepare(tmp_path / "file" / "sub", {})


FIELDS = {"x": ((3,), np.dtype(np.float64).str)}
P = lambda start, stop: f"piece_{start:010d}-{stop:010d}.npz"  # a piece of runs [start, stop)


def test_run_pieces_computes_only_missing_or_unproven_pieces(tmp_path):
    calls, crash_at = [], [6]

    def piece(start, stop):
        if start == crash_at[0]:
            raise KeyboardInterrupt  # killed while computing the last piece
        calls.append(start)
        return {"x": np.arange(start, stop, dtype=np.float64)[:, None] * np.ones(3)}

    run = lambda: results.run_pieces(tmp_path / "o", {"grid": 1}, 8, 2, FIELDS, piece)
    with pytest.raises(KeyboardInterrupt):
        run()
    pieces = tmp_path / "o" / "pieces"
    assert sorted(p.name for p in pieces.iterdir()) == [P(0, 2), P(2, 4), P(4, 6)]
    assert not (tmp_path / "o" / ".lock").exists()  # released on the way out
    (pieces / P(4, 6)).unlink()                                             # lost
    (pieces / P(2, 4)).write_bytes(b"PK\x03\x04 truncated")                 # corrupt
    foreign = {"x": np.zeros((2, 3)), "__identity__": "another run", "__start__": 0, "__stop__": 2}
    np.savez(pieces / P(0, 2), **foreign)                                   # belongs to another run
    crash_at[0] = None
    first = run()
    assert calls == [0, 2, 4, 0, 2, 4, 6]
    np.testing.assert_array_equal(first["x"], np.arange(8.0)[:, None] * np.ones(3))
    assert not pieces.exists()  # joined into results.npz, then removed
    again = run()  # loaded, not recomputed
    np.testing.assert_array_equal(again["x"], first["x"])
    assert len(calls) == 7
    with pytest.raises(ValueError, match="holds another run"):
        results.run_pieces(tmp_path / "o", {"grid": 2}, 8, 2, FIELDS, piece)


def _piece(start, stop, log=None):
    if log is not None:
        log.append((start, stop))
    return {"x": np.arange(start, stop, dtype=np.float64)[:, None] * np.ones(3)}


def test_a_resume_with_another_piece_size_uses_every_piece_and_computes_only_the_runs_between(tmp_path):
    out, log = tmp_path / "o", []

    def crash_at_6(start, stop):
        if start == 6:
            raise KeyboardInterrupt
        return _piece(start, stop)

    with pytest.raises(KeyboardInterrupt):
        results.run_pieces(out, {"grid": 1}, 11, 2, FIELDS, crash_at_6)
    (out / "pieces" / P(2, 4)).unlink()  # lost: a hole between two pieces
    got = results.run_pieces(out, {"grid": 1}, 11, 3, FIELDS, lambda a, b: _piece(a, b, log))  # another machine's size
    assert log == [(2, 4), (6, 9), (9, 11)]
    np.testing.assert_array_equal(got["x"], np.arange(11.0)[:, None] * np.ones(3))


def test_the_runs_an_interrupted_piece_finished_are_kept_as_a_piece(tmp_path):
    out, log = tmp_path / "o", []

    def interrupted_in_the_second_piece(start, stop):
        if start == 4:  # runs 4 and 5 of [4, 8) finished
            raise results.Interrupted(6, _piece(4, 6))
        return _piece(start, stop)

    with pytest.raises(KeyboardInterrupt):
        results.run_pieces(out, {"grid": 1}, 10, 4, FIELDS, interrupted_in_the_second_piece)
    assert sorted(p.name for p in (out / "pieces").iterdir()) == [P(0, 4), P(4, 6)]
    assert results.kept(out) == f"6 finished runs are kept in {out}/pieces"
    got = results.run_pieces(out, {"grid": 1}, 10, 4, FIELDS, lambda a, b: _piece(a, b, log))
    assert log == [(6, 10)]
    np.testing.assert_array_equal(got["x"], np.arange(10.0)[:, None] * np.ones(3))


def test_a_folder_with_other_files_or_in_use_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        results.prepare(tmp_path, {"a": 1})
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "config.json").exists()
    with pytest.raises(ValueError, match="empty"):
        results.prepare("", {"a": 1})
    d = tmp_path / "d"
    d.mkdir()
    with results.lock(d):
        with pytest.raises(ValueError, match="in use by process"):
            with results.lock(d):
                pass
    with results.lock(d):  # released
        pass


def test_csv_one_row_per_run_streamed_in_blocks(tmp_path):
    from jaxdescent import Coords
    from jaxdescent._engine import columns

    coords = Coords([("learning_rate", np.array([0.1, 0.2])), ("w0", np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))])
    arrays = {"final_loss": np.arange(6.0).reshape(2, 3), "diverged_step": np.array([[-1, 2, -1], [3, -1, -1]])}
    results.write_csv(tmp_path / "r.csv", lambda rows: columns(coords, arrays, rows), 6, block=4)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "learning_rate,w0_0,w0_1,final_loss,diverged_step"
    assert lines[1:3] == ["0.1,1.0,2.0,0.0,-1", "0.1,3.0,4.0,1.0,2"]
    assert lines[6] == "0.2,5.0,6.0,5.0,-1" and len(lines) == 7


def test_load_names_a_missing_meta_json_and_refuses_absurd_sizes(tmp_path):
    results.save_arrays(tmp_path / "results.npz", {"x": np.zeros(1000)})
    with pytest.raises(FileNotFoundError, match="meta.json is missing"):
        results.load(tmp_path)
    with pytest.raises(ValueError, match="kB of arrays"):
        results.load_arrays(tmp_path / "results.npz", max_bytes=100)
    (tmp_path / "meta.json").write_bytes(b" " * (results.MAX_META_BYTES + 1))
    with pytest.raises(ValueError, match="not a jaxdescent meta.json"):
        results.load(tmp_path)


def test_a_declared_huge_array_is_refused_before_reading(tmp_path):
    """A zip bomb: a compressed .npz whose arrays would fill the memory; the index gives it away."""
    np.savez_compressed(tmp_path / "results.npz", x=np.zeros(10_000_000, np.uint8))
    assert (tmp_path / "results.npz").stat().st_size < 100_000
    with pytest.raises(ValueError, match="10.0 MB of arrays"):
        results.load_arrays(tmp_path / "results.npz", max_bytes=1_000_000)


def test_writes_replace_a_planted_symlink_never_follow_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.npz").symlink_to(victim)
    (out / "meta.json").symlink_to(victim)
    results.save(out, {"x": np.ones(2)}, {"a": 1})
    assert victim.read_text() == "precious"
    assert not (out / "results.npz").is_symlink() and results.load(out).meta == {"a": 1}


def test_run_pieces_owns_the_folder_before_it_reads_or_writes_config(tmp_path):
    """Two runs racing into one folder: the second is refused by the lock, not by a check-then-write on config.json."""
    import threading

    out = tmp_path / "o"
    errors = []

    def other_run():  # another thread: it does not share this one's lock
        try:
            results.run_pieces(out, {"grid": "other"}, 2, 2, FIELDS, lambda a, b: {"x": np.zeros((b - a, 3))})
        except ValueError as e:
            errors.append(str(e))

    out.mkdir()
    with results.lock(out):
        thread = threading.Thread(target=other_run)
        thread.start()
        thread.join()
        assert not (out / "config.json").exists()  # refused before it wrote anything
        # the owner itself runs inside its lock (the command line holds it while it writes meta.json and figures)
        got = results.run_pieces(out, {"grid": "mine"}, 2, 2, FIELDS, lambda a, b: {"x": np.ones((b - a, 3))})
        assert (out / ".lock").exists()
    assert len(errors) == 1 and "in use by process" in errors[0]
    np.testing.assert_array_equal(got["x"], np.ones((2, 3)))
    assert not (out / ".lock").exists()


def test_a_foreign_lock_file_is_not_removed(tmp_path):
    (tmp_path / ".lock").write_text("my notes")
    with pytest.raises(ValueError, match="not a jaxdescent lock"):
        with results.lock(tmp_path):
            pass
    assert (tmp_path / ".lock").read_text() == "my notes"
    (tmp_path / ".lock").write_text("")  # its owner died between creating and writing it: stale
    with results.lock(tmp_path):
        pass


def test_refusals_are_invalid_argument_errors(tmp_path):
    from jaxdescent._validate import InvalidArgument

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidArgument):
        results.prepare(tmp_path, {"a": 1})
    with pytest.raises(InvalidArgument):
        results.folder(" ")


def test_csv_blocks_cost_memory_of_the_block_not_of_the_grid():
    """--csv streams: building the columns of a few rows must not allocate anything of the whole grid's size."""
    import tracemalloc

    from jaxdescent import Coords
    from jaxdescent._engine import columns

    coords = Coords([("learning_rate", np.linspace(0.1, 1, 1000)), ("w0", np.linspace(-2, 2, 10_000))])
    arrays = {"final_loss": np.zeros((1000, 10_000), np.float32)}  # 10^7 runs, 40 MB, allocated before
    tracemalloc.start()
    cols = columns(coords, arrays, slice(5_000_000, 5_000_010))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000, peak  # it was 80 MB: an index of every run, for every block
    np.testing.assert_array_equal(cols["w0"], np.linspace(-2, 2, 10_000)[:10])
    np.testing.assert_array_equal(cols["learning_rate"], np.full(10, np.linspace(0.1, 1, 1000)[500]))


def _meta(text):
    return lambda d: (d / "meta.json").write_bytes(text)


def _npz(make):
    def plant(d):
        (d / "results.npz").unlink()
        make(d / "results.npz")
    return plant


def _huge_shape(path):
    """An .npy whose header declares 10^13 float64 (80 TB; the padding keeps its length), in a zip with a right CRC."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(3))
    data = buf.getvalue()
    i = data.index(b"'shape': (3,), }")
    end = data.index(b"\n", i)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", data[:i] + b"'shape': (10000000000000,), }".ljust(end - i) + data[end:])


@pytest.mark.parametrize(
    "plant, error, match",
    [
        pytest.param(_meta(b"[1, 2, 3]"), ValueError, "meta.json is not a jaxdescent meta.json: it must hold a JSON object",
                     id="meta-list"),
        pytest.param(_meta(b'"x"'), ValueError, "must hold a JSON object, got a str", id="meta-str"),
        pytest.param(_meta(b"{"), ValueError, "meta.json is damaged: not valid JSON", id="meta-truncated"),
        pytest.param(_meta(b"\xff\xfe\xfa"), ValueError, "meta.json is damaged", id="meta-not-text"),
        pytest.param(_meta(b"[" * 100_000 + b"]" * 100_000), ValueError, "meta.json is damaged", id="meta-deep"),
        pytest.param(lambda d: ((d / "meta.json").unlink(), os.mkfifo(d / "meta.json")), ValueError,
                     "meta.json is a FIFO, not a regular file", id="meta-fifo"),
        pytest.param(lambda d: ((d / "meta.json").unlink(), (d / "meta.json").mkdir()), ValueError,
                     "meta.json is a folder", id="meta-folder"),
        pytest.param(_npz(lambda p: p.symlink_to("/dev/zero")), ValueError,
                     "results.npz is a device, not a regular file", id="npz-link-to-dev-zero"),
        pytest.param(_npz(os.mkfifo), ValueError, "results.npz is a FIFO, not a regular file", id="npz-fifo"),
        pytest.param(_npz(lambda p: None), FileNotFoundError, "results.npz is missing", id="npz-missing"),
        pytest.param(_npz(lambda p: p.write_bytes(b"")), ValueError, "results.npz is damaged", id="npz-empty"),
        pytest.param(_npz(lambda p: np.save(p.with_suffix(".npy"), np.ones(3)) or p.with_suffix(".npy").rename(p)),
                     ValueError, "results.npz is damaged", id="npz-is-an-npy"),
        pytest.param(_npz(_huge_shape), ValueError, "declares (10000000000000,) float64", id="npz-header-declares-80-TB"),
    ],
)
def test_load_refuses_a_bad_folder_naming_the_file(tmp_path, plant, error, match):
    import re

    results.save(tmp_path, {"x": np.ones(3)}, {"a": 1})
    plant(tmp_path)
    with pytest.raises(error, match=re.escape(match)):
        results.load(tmp_path)


@pytest.mark.parametrize("out_dir", [None, 3, b"out", ""], ids=["none", "int", "bytes", "empty"])
def test_load_names_out_dir_when_it_is_not_a_path(out_dir):
    with pytest.raises(TypeError, match="out_dir"):
        results.load(out_dir)
    with pytest.raises(TypeError, match="path"):
        results.load_arrays(out_dir)


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "compressed"])
def test_a_truncated_or_bit_flipped_npz_is_damaged_or_still_the_same_arrays(tmp_path, compressed):
    """Every prefix and every byte with one bit flipped: one clear error naming the file, never other arrays."""
    arrays = {"final_w": np.arange(6.0).reshape(2, 3), "diverged": np.array([True, False])}
    path = tmp_path / "results.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    whole = path.read_bytes()
    damaged = 0
    for data in [whole[:n] for n in range(len(whole))] + \
            [whole[:i] + bytes([whole[i] ^ 1 << i % 8]) + whole[i + 1:] for i in range(len(whole))]:
        path.write_bytes(data)
        try:
            back = results.load_arrays(path)
        except ValueError as e:
            assert f"{path} is damaged" in str(e)
            damaged += 1
            continue
        assert back.keys() == arrays.keys()  # an altered field that does not matter (a date, padding)
        for k, v in arrays.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)
    assert damaged > 1.5 * len(whole)


# ---------------------------------------------------------------- what a run leaves in its folder, and how


def _dead_pid() -> int:
    """The process number of a process that has exited (and been reaped)."""
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _interrupted_at_4(start, stop):
    if start == 4:
        raise KeyboardInterrupt  # killed while computing the third piece
    return _piece(start, stop)


def test_only_the_runs_own_pieces_are_removed_never_the_users_files(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, _interrupted_at_4)
    (out / "pieces" / "notes.txt").write_text("mine")
    (out / "pieces" / "piece_00099.npz").write_bytes(b"not a piece of this run")
    got = results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, _piece)
    np.testing.assert_array_equal(got["x"], np.arange(8.0)[:, None] * np.ones(3))
    assert sorted(p.name for p in (out / "pieces").iterdir()) == ["notes.txt", "piece_00099.npz"]
    assert (out / "pieces" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("refusal", ["another run", "other files"])
def test_a_dead_processs_lock_in_a_refused_folder_is_left_as_found(tmp_path, refusal):
    out = tmp_path / "o"
    out.mkdir()
    if refusal == "another run":
        results.prepare(out, {"grid": "other"})
    else:
        (out / "notes.txt").write_text("mine")
    lock = out / ".lock"
    lock.write_text(str(_dead_pid()))
    os.chmod(lock, 0o600)
    os.utime(lock, ns=(10**18, 10**18))
    before = {p.name: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in out.iterdir()}
    with pytest.raises(ValueError, match="holds other files" if refusal == "other files" else "holds another run"):
        results.run_pieces(out, {"grid": 1}, 4, 2, FIELDS, _piece)
    assert {p.name: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in out.iterdir()} == before


def test_a_dead_processs_lock_in_its_own_folder_is_taken_over_and_released(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".lock").write_text(str(_dead_pid()))  # a killed run's
    results.run_pieces(out, {"grid": 1}, 4, 2, FIELDS, _piece)
    assert not (out / ".lock").exists()


def test_a_killed_writes_temporaries_are_removed_by_the_run_that_finishes(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, _interrupted_at_4)
    left = [out / ".results.npz.k1ll_ed9.tmp", out / ".config.json.abcdefgh.tmp",
            out / "pieces" / f".{P(4, 6)}.x_y_z_12.tmp"]
    kept = [out / ".results.npz.mine.tmp", out / ".notes.txt.abcdefgh.tmp", out / ".results.npz.ABCDEFGH.tmp",
            out / "pieces" / ".piece_00099.npz.abcdefgh.tmp"]  # not the writer's pattern, or not a file of this run
    for path in left + kept:
        path.write_bytes(b"x" * 1000)
    results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, _piece)
    assert not [p for p in left if p.exists()]
    assert all(p.read_bytes() == b"x" * 1000 for p in kept)


@pytest.fixture
def umask():
    """Sets the process's umask for the test, and restores it."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002], ids=lambda m: f"umask-{m:03o}")
def test_files_are_written_with_the_mode_the_umask_gives_new_files(tmp_path, umask, mask):
    """mkstemp creates 0600 whatever the umask: every output was private to its owner."""
    import stat

    umask(mask)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, _interrupted_at_4)
    written = [out / "config.json", out / "pieces" / P(0, 2)]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in written}
    results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, _piece)
    results.save_json(out / "meta.json", {})
    results.save_text(out / "t.txt", "x")
    results.write_csv(out / "r.csv", lambda rows: {"a": np.arange(rows.start, rows.stop)}, 3)
    modes.update({p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()})
    assert modes.keys() == {"config.json", P(0, 2), "results.npz", "meta.json", "t.txt", "r.csv"}
    assert modes == dict.fromkeys(modes, 0o666 & ~mask), {k: oct(v) for k, v in modes.items()}


@pytest.fixture
def read_only(monkeypatch):
    """Makes a folder read-only: chmod -w, or as root (whom modes do not stop) every write into it fails with EROFS."""
    import errno
    import stat

    made = []

    def make(folder):
        folder = Path(folder).resolve()
        if os.geteuid() != 0:
            for p in [folder, *folder.rglob("*")]:
                made.append((p, p.stat().st_mode))
                p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
            return
        inside = lambda path: Path(os.path.abspath(os.fspath(path))).is_relative_to(folder)
        refuse = lambda path: OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        real_open, real_access = os.open, os.access
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

        def guarded_open(path, flags, *args, **kwargs):
            if flags & writes and inside(path):
                raise refuse(path)
            return real_open(path, flags, *args, **kwargs)

        def guarded(real):
            def call(path, *args, **kwargs):
                if inside(path):
                    raise refuse(path)
                return real(path, *args, **kwargs)
            return call

        monkeypatch.setattr(os, "open", guarded_open)
        monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if mode & os.W_OK and inside(path)
                            else real_access(path, mode, *a, **k))
        for name in ("unlink", "remove", "rmdir", "mkdir", "replace", "rename", "chmod", "utime"):
            monkeypatch.setattr(os, name, guarded(getattr(os, name)))
        import builtins
        real_builtin_open = builtins.open
        monkeypatch.setattr(builtins, "open", lambda path, mode="r", *a, **k: (_ for _ in ()).throw(refuse(path))
                            if any(c in mode for c in "wax+") and isinstance(path, (str, os.PathLike)) and inside(path)
                            else real_builtin_open(path, mode, *a, **k))

    yield make
    for p, mode in reversed(made):
        p.chmod(mode)


def test_a_finished_folder_on_read_only_media_is_loaded_not_refused(tmp_path, read_only):
    out = tmp_path / "o"
    first = results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, _piece, extra={"lr": np.arange(8.0)})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    read_only(out)
    with pytest.raises(OSError):  # the fixture works: a write is refused
        results.save_text(out / "probe.txt", "x")
    computed = []
    again = results.run_pieces(out, {"grid": 1}, 8, 2, FIELDS, lambda a, b: computed.append(a) or _piece(a, b),
                               extra={"lr": np.arange(8.0)})
    np.testing.assert_array_equal(again["x"], first["x"])
    assert computed == [] and {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(OSError, match="not writable"):  # another run is still refused, not loaded
        results.run_pieces(out, {"grid": 2}, 8, 2, FIELDS, _piece)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


SAVE_INTERRUPTED = """
import os, sys
import numpy.lib.format as fmt
from jaxdescent import results
real, calls = fmt.write_array, []
def interrupted(*args, **kwargs):  # Ctrl-C while the second array is written
    calls.append(1)
    if len(calls) == 2:
        raise KeyboardInterrupt
    return real(*args, **kwargs)
fmt.write_array = interrupted
try:
    results.save_arrays(os.path.join(sys.argv[1], "a.npz"), {"x": [1.0, 2.0], "y": [3, 4], "z": [5]})
except KeyboardInterrupt:
    print(sorted(os.listdir(sys.argv[1])))
"""


def test_a_save_interrupted_leaves_no_file_and_nothing_on_stderr_at_exit(tmp_path):
    # NumPy 2.0's savez left its zip open when interrupted: closed at exit, it printed "seek of closed file"
    done = subprocess.run([sys.executable, "-c", SAVE_INTERRUPTED, str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]" and done.stderr == "", (done.stdout, done.stderr)
