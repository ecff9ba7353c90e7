"""Results on disk: arrays in ``.npz``, metadata in JSON, each written atomically; long runs saved in pieces.

A folder holds one run::

    DIR/config.json     what was asked for (a rerun with other arguments is refused)
    DIR/pieces/*.npz    finished pieces of a long run; a killed run resumes from them
    DIR/results.npz     the arrays, e.g. final_w, final_loss, diverged, indexed [learning rate, w0]
    DIR/meta.json       the command, grids, versions, devices, timings

Every file is written to a temporary name in the same folder and renamed into
place, so a reader never sees half a file. Nothing is ever unpickled.
"""

import contextlib
import contextvars
import csv
import functools
import glob
import hashlib
import io
import json
import os
import re
import stat
import struct
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from jaxdescent._validate import InvalidArgument, human_bytes, memory_bytes

MAX_META_BYTES = 1 << 24  # a meta.json is a few kilobytes

class Results(NamedTuple):
    """What :func:`load` returns: ``arrays`` (name → NumPy array) and ``meta`` (a dict)."""

    arrays: dict
    meta: dict


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc), else once (see _umask_once)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _umask_once()


@functools.lru_cache(maxsize=None)
def _umask_once() -> int:
    """Reading the umask means setting it: done once, under a lock (a file created meanwhile is at worst private)."""
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


_umask_lock = threading.Lock()


def _atomic_write(path: Path, write: Callable) -> None:
    """Writes through a fresh temporary file in the same folder (created exclusively, never a link), then renames.

    The temporary file is created 0600; before the rename it gets the mode any
    new file would (0o666 less the umask), so others read the results as they
    read the user's other files.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX.format(path.name), suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


_TMP_PREFIX, _TMP_SUFFIX = ".{}.", ".tmp"  # .results.npz.XXXXXXXX.tmp: mkstemp puts 8 characters between
_TMP_MIDDLE = re.compile(r"[a-z0-9_]{8}")  # tempfile's own alphabet


def remove_temporaries(out_dir, names) -> None:
    """Removes what a killed :func:`_atomic_write` of one of ``names`` left in ``out_dir`` (``.NAME.XXXXXXXX.tmp``).

    Only files of the writer's own pattern, for the names given, are removed; call
    it while holding :func:`lock`, so that no write in progress is removed.
    """
    out = Path(out_dir)
    for name in names:
        prefix = _TMP_PREFIX.format(name)
        for path in out.glob(glob.escape(prefix) + "*" + _TMP_SUFFIX):
            middle = path.name[len(prefix):-len(_TMP_SUFFIX)]
            if _TMP_MIDDLE.fullmatch(middle) and not path.is_symlink() and path.is_file():
                path.unlink(missing_ok=True)


def _savez(f, arrays: dict) -> None:
    """``np.savez(f, **arrays)``, its zip closed whatever happens: NumPy 2.0's leaves it open when interrupted
    (Ctrl-C in a save), and its close at exit then fails on the closed file ("seek of closed file" on stderr)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, a, allow_pickle=False)


def save_arrays(path, arrays: dict) -> None:
    """Writes ``arrays`` to ``path`` (.npz, as ``np.savez``) atomically."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    _atomic_write(Path(path), lambda f: _savez(f, arrays))


def _open_regular(path, name: str):
    """Opens ``path`` for reading, refusing anything but a regular file once links are followed.

    The file is opened without blocking and checked through its descriptor, so a FIFO
    (which would block forever) or a device such as ``/dev/zero`` (which never ends) is
    refused before a byte is read, and cannot be swapped in after the check.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument(f"{name} must be a file path (str or os.PathLike), got {path!r}")
    if not str(path).strip():
        raise InvalidArgument(f"{name} is empty; name a file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{path} is missing") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
        raise InvalidArgument(f"{path} is {kind}, not a regular file; jaxdescent reads results only from regular files")
    return os.fdopen(fd, "rb")


def _npy_headers(z: zipfile.ZipFile, f, path) -> None:
    """Checks that the index lists every member and each is an .npy declaring exactly the bytes it holds, no objects.

    NumPy allocates what a header declares before it reads: a damaged shape must not become an
    allocation of any size. An altered index entry can hide the members after it from zipfile,
    which does not compare them with the count in the end record.
    """
    f.seek(max(0, os.fstat(f.fileno()).st_size - 22))
    end = f.read(22)  # the end record, last in a zip without a comment (as NumPy writes them)
    if len(end) == 22 and end[:4] == b"PK\x05\x06":
        count = struct.unpack("<H", end[10:12])[0]
        if count != 0xFFFF and count != len(z.infolist()):  # 0xFFFF: the count is in the zip64 record
            raise ValueError(f"its index lists {len(z.infolist())} arrays, its end record {count}")
    for info in z.infolist():
        if not info.filename.endswith(".npy"):
            raise ValueError(f"member {info.filename!r} is not an .npy array")
        with z.open(info) as member:
            version = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
            if dtype.hasobject:
                raise InvalidArgument(f"{path} holds Python objects in {info.filename!r} (dtype {dtype}), which "
                                      "would need unpickling; jaxdescent never unpickles")
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if member.tell() + nbytes != info.file_size:
                raise ValueError(f"member {info.filename!r} declares {shape} {dtype} ({nbytes:,} bytes) but holds "
                                 f"{info.file_size - member.tell():,} bytes")


def load_arrays(path, *, max_bytes: Optional[int] = None) -> dict:
    """Reads an .npz written by :func:`save_arrays`, without unpickling.

    Only a regular file is read (not a FIFO, a device or a folder), of at most
    half this machine's memory. The arrays' sizes, as the file's index declares
    them, are summed before anything is read: more than ``max_bytes`` (default:
    half this machine's memory) is refused with the size, not an out-of-memory
    kill. Each array's header must declare exactly the bytes it holds.

    Raises:
      FileNotFoundError: there is no ``path``.
      InvalidArgument (a ValueError): ``path`` is not a path, not a regular file, too large, holds
        pickled objects, or is damaged (truncated, altered: not an .npz that :func:`save_arrays` wrote).
    """
    half = memory_bytes() // 2
    limit = half if max_bytes is None else max_bytes
    with _open_regular(path, "path") as f:
        size = os.fstat(f.fileno()).st_size
        if size > half:  # its zip index alone could fill the memory
            raise InvalidArgument(f"{path} is {human_bytes(size)}, more than {human_bytes(half)} (half this "
                                  "machine's memory); load it on a larger machine")
        try:
            with zipfile.ZipFile(f) as z:
                declared = sum(info.file_size for info in z.infolist())
                if declared > limit:
                    raise InvalidArgument(
                        f"{path} holds {human_bytes(declared)} of arrays, more than {human_bytes(limit)} "
                        + ("(half this machine's memory); load it on a larger machine" if max_bytes is None
                           else "(max_bytes)"))
                _npy_headers(z, f, path)
            f.seek(0)
            with np.load(f, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (InvalidArgument, MemoryError):
            raise
        except Exception as e:  # truncated, bits flipped, not a zip: whatever the parser tripped on
            raise InvalidArgument(f"{path} is damaged: not an .npz of arrays that jaxdescent wrote "
                                  f"({type(e).__name__}: {e}); write it again (rerun the command)") from e


def save_json(path, obj) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=True).encode()
    _atomic_write(Path(path), lambda f: f.write(text))


def folder(out_dir) -> Path:
    """Creates ``out_dir`` (and its parents) if needed; checks that it is a writable folder.

    Raises:
      InvalidArgument: the name is empty (it would mean the current directory).
      OSError: the folder cannot be created or written.
    """
    if not str(out_dir).strip():
        raise InvalidArgument("the output folder name is empty; name a folder")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create output folder {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK):
        raise OSError(f"output folder {out} is not writable")
    return out


def prepare(out_dir, config: dict) -> Path:
    """Makes ``out_dir`` ready for the run ``config`` describes.

    A new folder, an empty one, or one that holds the same run (to resume) is
    accepted; anything else is refused and left untouched. Call it while
    holding :func:`lock`, so that two runs cannot both find the folder empty.

    Raises:
      InvalidArgument (a ValueError): the folder holds a run with another config, or other files.
      OSError: the folder cannot be created or written.
    """
    out = folder(out_dir)
    config = json.loads(json.dumps(config))
    path = out / "config.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise InvalidArgument(f"{out}/config.json is not valid JSON; choose another folder or remove it") from None
        if not isinstance(old, dict):
            raise InvalidArgument(f"{out}/config.json is not a jaxdescent config; choose another folder")
        if old != config:
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise InvalidArgument(
                f"{out} holds another run (different {', '.join(changed)}); choose another folder or remove it")
    else:
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK)
        if others:
            raise InvalidArgument(f"{out} holds other files ({', '.join(others[:3])}); choose an empty or new folder")
        save_json(path, config)
    return out


def saved_chunk(out_dir, shape: Optional[list] = None) -> Optional[int]:
    """The chunk the runs in ``out_dir`` were computed with (if ``shape`` is given, of a grid of that shape); else None.

    The chunk decides the runs' last bits, so a resume (on another machine,
    whose default differs) computes the rest with it (see :func:`prepare`,
    which then checks the rest of the folder's identity).
    """
    try:
        config = json.loads((Path(out_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    chunk = config.get("chunk") if isinstance(config, dict) and shape in (None, config.get("shape")) else None
    return chunk if isinstance(chunk, int) and not isinstance(chunk, bool) and chunk > 0 else None


LOCK = ".lock"


@contextlib.contextmanager
def lock(out_dir):
    """Owns ``out_dir`` for the duration: a second run into the same folder is refused while this one lives.

    The lock is a file created exclusively; one left by a process that no longer
    exists (or empty: its owner died creating it) is taken over, and put back
    as it was found if the block refuses the folder (raises InvalidArgument:
    it holds another run or other files, so the lock was not ours); a ``.lock``
    that is not a process number is not ours and is left alone (refused).
    Inside the block, :func:`run_pieces` into the same folder uses this lock
    instead of taking its own, so a caller can own the folder for longer than
    the computation (the command line holds it while it writes meta.json, the
    CSV and the figures).
    """
    path = Path(out_dir) / LOCK
    stale = None
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                raw = path.read_bytes()
                info = path.lstat()
            except OSError:
                raw, info = b"", None
            text = raw.decode("utf-8", "replace").strip()
            if text and not text.isdigit():
                raise InvalidArgument(f"{path} is not a jaxdescent lock; choose another folder") from None
            pid = int(text or 0)
            if pid and _alive(pid):
                raise InvalidArgument(f"{out_dir} is in use by process {pid}; wait for it or choose another folder") \
                    from None
            if info is not None:
                stale = raw, stat.S_IMODE(info.st_mode), (info.st_atime_ns, info.st_mtime_ns)
            path.unlink(missing_ok=True)  # stale: its owner is gone
    else:
        raise InvalidArgument(f"cannot lock {out_dir}")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    token = _held.set(_held.get() | {path.resolve()})
    refused = False
    try:
        yield Path(out_dir)
    except InvalidArgument:
        refused = True
        raise
    finally:
        _held.reset(token)
        if refused and stale is not None:
            _put_back(path, *stale)
        else:
            path.unlink(missing_ok=True)


def _put_back(path: Path, data: bytes, mode: int, times: tuple) -> None:
    """Leaves a stale lock that was taken over as it was found (bytes, mode, times): the folder was refused.

    A dead process's ``.lock`` in a folder that turns out to hold something else
    (another run, the user's files) was not this run's to remove.
    """
    try:
        with open(path, "wb") as f:  # rewritten in place: the folder is never without a lock meanwhile
            f.write(data)
        os.chmod(path, mode)
        os.utime(path, ns=times)
    except OSError:
        path.unlink(missing_ok=True)


_held: contextvars.ContextVar = contextvars.ContextVar("jaxdescent_held_locks", default=frozenset())


def _holding(out_dir) -> bool:
    """Whether this thread of control holds ``out_dir``'s lock (see :func:`lock`)."""
    return (Path(out_dir) / LOCK).resolve() in _held.get()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _valid_piece(path: Path, identity: str, start: int, stop: int, fields: dict, extra=(),
                 lead: Optional[tuple] = None) -> Optional[dict]:
    """The piece's arrays if it proves it belongs to this run (identity, run range, fields, shapes); else None."""
    try:
        arrays = load_arrays(path)
    except Exception:  # truncated, empty, not a zip, pickled: recompute it
        return None
    meta = {k: arrays.pop(k, None) for k in ("__identity__", "__start__", "__stop__", *extra)}
    if meta["__identity__"] is None or str(meta["__identity__"]) != identity:
        return None
    if meta["__start__"] is None or int(meta["__start__"]) != start or int(meta["__stop__"]) != stop:
        return None
    if set(arrays) != set(fields):
        return None
    for name, (shape, dtype) in fields.items():
        a = arrays[name]
        if a.shape != (lead or (stop - start,)) + tuple(shape) or a.dtype.str != dtype:
            return None
    return arrays


class Interrupted(KeyboardInterrupt):
    """Ctrl-C inside a piece, carrying the runs finished before it: ``stop`` and their arrays (``None``: none).

    Raised by a ``compute_piece`` of :func:`run_pieces`, which saves those runs
    as a piece of their own before the interrupt goes on.
    """

    def __init__(self, stop: int, arrays: Optional[dict]):
        super().__init__()
        self.stop, self.arrays = stop, arrays


PIECE = re.compile(r"piece_(\d{10})-(\d{10})\.npz")  # runs [start, stop) of the grid


def _piece_name(start: int, stop: int) -> str:
    return f"piece_{start:010d}-{stop:010d}.npz"


def _pieces_found(pieces_dir: Path, identity: str, num_runs: int, fields: dict) -> dict:
    """start → (stop, arrays) of the valid pieces in ``pieces_dir``, none overlapping another (the first kept)."""
    found, end = {}, 0
    spans = sorted((int(m[1]), int(m[2]), p) for p in pieces_dir.iterdir() if (m := PIECE.fullmatch(p.name)))
    for start, stop, path in spans:
        if start < end or not start < stop <= num_runs:
            continue
        arrays = _valid_piece(path, identity, start, stop, fields)
        if arrays is not None:
            found[start], end = (stop, arrays), stop
    return found


def kept(out_dir) -> str:
    """What an interrupted :func:`run_pieces` left in ``out_dir``, in words: the finished runs in its pieces."""
    out = Path(out_dir)
    if (out / "results.npz").exists():
        return f"the results are complete in {out}/results.npz"
    spans = [PIECE.fullmatch(p.name) for p in (out / "pieces").iterdir()] if (out / "pieces").is_dir() else []
    runs = sum(int(m[2]) - int(m[1]) for m in spans if m)
    return f"{runs:,} finished runs are kept in {out}/pieces"


def run_pieces(
    out_dir, config: dict, num_runs: int, piece_runs: int, fields: dict,
    compute_piece: Callable[[int, int], dict], *, extra: Optional[dict] = None, grid_shape: Optional[tuple] = None,
    progress: Optional[Callable[[int, int], object]] = None,
) -> dict:
    """Computes runs ``0..num_runs`` in pieces of at most ``piece_runs``, saving each; a rerun resumes.

    ``DIR/pieces/piece_START-STOP.npz`` holds runs ``[START, STOP)`` with the
    run's identity (a digest of ``config``); a piece is used only if its
    identity, run range, field names, shapes and dtypes all match, otherwise
    (foreign, truncated) it is recomputed. The pieces' size is not part of the
    identity: a rerun with another ``piece_runs`` (another machine's default)
    uses every piece there and computes the runs between them. A
    ``compute_piece`` interrupted with :class:`Interrupted` has the runs it
    finished saved as a piece before the interrupt goes on. When every run is
    there the pieces are joined into ``DIR/results.npz`` (with ``extra``
    arrays, e.g. the coordinates) and removed (only the pieces, and what a
    killed write of this run left; ``pieces/`` itself only if then empty). A
    call that finds a valid ``results.npz`` of the same config returns it
    without computing or writing anything (the folder may be read-only).

    Args:
      out_dir: the folder; it is locked for the duration (see :func:`lock`).
      config: JSON-able identity of the run (see :func:`prepare`).
      num_runs: how many runs.
      piece_runs: the most runs per piece computed.
      fields: name → (per-run shape, dtype string) of every array a piece holds.
      compute_piece: ``(start, stop)`` → dict of arrays with ``stop - start`` runs first.
      extra: arrays stored beside the results (coordinates).
      grid_shape: the run axes' shape: results.npz holds each field shaped
        ``grid_shape + per-run shape`` (default: one flat run axis).
      progress: called as ``progress(runs done, num_runs)`` after each piece, found or computed.

    Returns:
      name → the arrays of all runs, shaped ``grid_shape + per-run shape``.
    """
    lead = tuple(grid_shape or (num_runs,))
    identity = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    finished = lambda d: _valid_piece(d / "results.npz", identity, 0, num_runs, fields, extra or (), lead) \
        if (d / "results.npz").exists() else None
    done = _finished(out_dir, config, finished)
    if done is not None:  # read, nothing written: a finished folder may be on read-only media
        return {k: done[k] for k in fields}
    out = folder(out_dir)
    with contextlib.nullcontext() if _holding(out) else lock(out):  # owned before config.json is read or written
        prepare(out, config)
        done = finished(out)
        if done is not None:
            return {k: done[k] for k in fields}
        pieces_dir = out / "pieces"
        pieces_dir.mkdir(exist_ok=True)
        found = _pieces_found(pieces_dir, identity, num_runs, fields)
        names = [_piece_name(start, stop) for start, (stop, _) in found.items()]

        def save(start, stop, arrays):
            names.append(_piece_name(start, stop))
            save_arrays(pieces_dir / names[-1], {**arrays, "__identity__": identity, "__start__": start,
                                                 "__stop__": stop})

        parts, start = [], 0
        while start < num_runs:
            if start in found:
                stop, arrays = found[start]
            else:
                stop = min(start + piece_runs, num_runs, *(s for s in found if s > start))
                try:
                    arrays = {k: np.asarray(v) for k, v in compute_piece(start, stop).items()}
                except Interrupted as e:
                    if e.arrays is not None and e.stop > start:
                        save(start, e.stop, {k: np.asarray(v) for k, v in e.arrays.items()})
                    raise
                save(start, stop, arrays)
            parts.append(arrays)
            start = stop
            if progress is not None:
                progress(stop, num_runs)
        arrays = {k: np.concatenate([p[k] for p in parts]).reshape(lead + tuple(fields[k][0])) for k in fields}
        save_arrays(out / "results.npz", {**arrays, **(extra or {}), "__identity__": identity, "__start__": 0,
                                          "__stop__": num_runs})
        # Only what this run wrote or proved its own goes: a file of the user's in pieces/ stays, and so does pieces/.
        remove_temporaries(out, ["results.npz", "config.json"])
        written = {p.name[1:].rsplit(".", 2)[0] for p in pieces_dir.glob(".piece_*.tmp")}  # killed writes' too
        remove_temporaries(pieces_dir, [n for n in written if PIECE.fullmatch(n)])
        for name in names:
            (pieces_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: it holds something that is not ours
            pieces_dir.rmdir()
    return arrays


def _finished(out_dir, config: dict, finished: Callable[[Path], Optional[dict]]) -> Optional[dict]:
    """The arrays of ``out_dir``'s finished run of ``config``, read without writing anything (nor locking); else None.

    Files are replaced only by renames, so a reader sees either the old file or the
    new one whole; whatever is not proven here is decided again under the lock.
    """
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir).strip():
        return None
    out = Path(out_dir)
    try:
        if not (out / "config.json").is_file() or not (out / "results.npz").is_file():
            return None
        if json.loads((out / "config.json").read_text()) != json.loads(json.dumps(config)):
            return None
    except (OSError, ValueError):
        return None
    return finished(out)


def save_text(path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def save_figure(path, fig, **savefig_kwargs) -> None:
    """Writes a matplotlib figure to ``path`` atomically (the format from the suffix, e.g. ``.png``)."""
    _atomic_write(Path(path), lambda f: fig.savefig(f, format=Path(path).suffix.lstrip("."), **savefig_kwargs))


def save(out_dir, arrays: dict, meta: dict) -> None:
    """Writes ``DIR/results.npz`` and ``DIR/meta.json``, each atomically."""
    out = Path(out_dir)
    save_arrays(out / "results.npz", arrays)
    save_json(out / "meta.json", meta)


def load(out_dir) -> Results:
    """Reads ``DIR/results.npz`` and ``DIR/meta.json`` back (never unpickling).

    Raises:
      FileNotFoundError: ``DIR/meta.json`` or ``DIR/results.npz`` is missing.
      InvalidArgument (a ValueError and a TypeError): ``out_dir`` is not a folder path; a file
        is not a regular file, too large or damaged; meta.json does not hold a JSON object.

    Examples:
      >>> import tempfile, numpy as np
      >>> from jaxdescent import results
      >>> d = tempfile.mkdtemp()
      >>> results.save(d, {"final_loss": np.zeros((2, 3))}, {"command": "demo"})
      >>> r = results.load(d)
      >>> r.arrays["final_loss"].shape, r.meta["command"]
      ((2, 3), 'demo')
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise InvalidArgument(f"out_dir must be a folder path (str or os.PathLike), got {out_dir!r}")
    if not str(out_dir).strip():
        raise InvalidArgument("out_dir is empty; name a folder")
    out = Path(out_dir)
    meta_path = out / "meta.json"
    try:
        f = _open_regular(meta_path, "out_dir")
    except FileNotFoundError:
        raise FileNotFoundError(f"{meta_path} is missing: {out} holds no finished command's results (rerun the "
                                "command to finish it; for out= of the library, use load_arrays(DIR/results.npz))") \
            from None
    with f:
        text = f.read(MAX_META_BYTES + 1)
    if len(text) > MAX_META_BYTES:
        raise InvalidArgument(f"{meta_path} is more than {MAX_META_BYTES:,} bytes: not a jaxdescent meta.json")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON, nested beyond the parser
        raise InvalidArgument(f"{meta_path} is damaged: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise InvalidArgument(f"{meta_path} is not a jaxdescent meta.json: it must hold a JSON object, "
                              f"got a {type(meta).__name__}")
    return Results(load_arrays(out / "results.npz"), meta)


def write_csv(path, columns: Callable[[slice], dict], num_runs: int, *, block: int = 1 << 16) -> None:
    """Writes one CSV row per run, ``block`` rows at a time: memory O(block), not O(runs).

    ``columns(rows)`` returns name → 1-D array for the runs in ``rows`` (a
    slice); float32 values are written as their shortest repr ("0.0001", not
    9.999999747378752e-05).
    """
    text_of = lambda v: [str(x) for x in v] if v.dtype == np.float32 else v.tolist()

    def write(f):
        wrapper = io.TextIOWrapper(f, encoding="utf-8", newline="")
        writer = csv.writer(wrapper)
        for start in range(0, num_runs, block):
            cols = columns(slice(start, min(start + block, num_runs)))
            if start == 0:
                writer.writerow(cols)
            writer.writerows(zip(*(text_of(np.asarray(v)) for v in cols.values())))
        wrapper.flush()
        wrapper.detach()

    _atomic_write(Path(path), write)
