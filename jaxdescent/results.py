"""Results on disk: arrays in ``.npz``, metadata in JSON, each written atomically; long runs saved in pieces.

A folder holds one run::

    DIR/config.json     what was asked for (a rerun with other arguments is refused)
    DIR/pieces/*.npz    finished pieces of a long run; a killed run resumes from them
    DIR/results.npz     the arrays, e.g. final_w, final_loss, diverged, indexed [learning rate, w0]
    DIR/meta.json       the command, grids, versions, devices, timings

Every file is written to a temporary name in the same folder and renamed into
place, so a reader never sees half a file. Nothing is ever unpickled.
"""

import csv
import io
import json
import os
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional

import numpy as np


class Results(NamedTuple):
    """What :func:`load` returns: ``arrays`` (name → NumPy array) and ``meta`` (a dict)."""

    arrays: dict
    meta: dict


def _atomic_write(path: Path, write: Callable) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_arrays(path, arrays: dict) -> None:
    """Writes ``arrays`` to ``path`` (.npz) atomically."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    _atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def load_arrays(path) -> dict:
    """Reads an .npz written by :func:`save_arrays`, without unpickling."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_json(path, obj) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=True).encode()
    _atomic_write(Path(path), lambda f: f.write(text))


def prepare(out_dir, config: dict) -> Path:
    """Makes ``out_dir`` ready for the run ``config`` describes.

    Raises:
      ValueError: the folder holds a run with another config (nothing is touched).
      OSError: the folder cannot be created or written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create output folder {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK):
        raise OSError(f"output folder {out} is not writable")
    config = json.loads(json.dumps(config))
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != config:
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ValueError(
                f"{out} holds another run (different {', '.join(changed)}); choose another --out or remove it")
    elif (out / "results.npz").exists():
        raise ValueError(f"{out} holds results of an unknown run; choose another --out or remove it")
    else:
        save_json(path, config)
    return out


def run_in_pieces(
    out_dir, num_pieces: int, compute_piece: Callable[[int], dict], *, progress: Optional[Callable[[Iterable], Iterable]] = None
) -> dict:
    """Computes pieces 0..num_pieces−1, saving each when done; pieces already on disk are loaded, not recomputed.

    Args:
      out_dir: a folder made by :func:`prepare`.
      num_pieces: how many pieces.
      compute_piece: piece index → dict of arrays, each with the piece's runs on axis 0.
      progress: wraps the iterable of piece indices (e.g. a tqdm bar).

    Returns:
      The pieces' arrays concatenated along axis 0.
    """
    pieces_dir = Path(out_dir) / "pieces"
    pieces_dir.mkdir(exist_ok=True)
    indices = range(num_pieces) if progress is None else progress(range(num_pieces))
    pieces = []
    for i in indices:
        path = pieces_dir / f"piece_{i:05d}.npz"
        if path.exists():
            pieces.append(load_arrays(path))
        else:
            arrays = {k: np.asarray(v) for k, v in compute_piece(i).items()}
            save_arrays(path, arrays)
            pieces.append(arrays)
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def save(out_dir, arrays: dict, meta: dict) -> None:
    """Writes ``DIR/results.npz`` and ``DIR/meta.json``, each atomically."""
    out = Path(out_dir)
    save_arrays(out / "results.npz", arrays)
    save_json(out / "meta.json", meta)


def load(out_dir) -> Results:
    """Reads ``DIR/results.npz`` and ``DIR/meta.json`` back (never unpickling).

    Examples:
      >>> import tempfile, numpy as np
      >>> from jaxdescent import results
      >>> d = tempfile.mkdtemp()
      >>> results.save(d, {"final_loss": np.zeros((2, 3))}, {"command": "demo"})
      >>> r = results.load(d)
      >>> r.arrays["final_loss"].shape, r.meta["command"]
      ((2, 3), 'demo')
    """
    out = Path(out_dir)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return Results(load_arrays(out / "results.npz"), meta)


def to_csv(result: Results, path, *, index=("learning_rate", "w0")) -> None:
    """Writes one CSV row per run, for pandas users.

    The arrays named in ``index`` are the grid axes (``learning_rate`` of shape (L,),
    ``w0`` of shape (W, ...)); every other array whose leading axes are (L, W) becomes
    columns, trailing axes flattened as ``name_0, name_1, …``.
    """
    axes = [result.arrays[name] for name in index]
    shape = tuple(len(a) for a in axes)
    columns = {}

    def add(name, a, lead):
        flat = a.reshape(*lead, -1)
        if flat.shape[-1] == 1 and a.ndim == len(lead):
            columns[name] = flat[..., 0]
        else:
            for j in range(flat.shape[-1]):
                columns[f"{name}_{j}"] = flat[..., j]

    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    for name, a, g in zip(index, axes, grids):
        add(name, a[g], shape)
    for name, a in result.arrays.items():
        if name not in index and a.shape[: len(shape)] == shape:
            add(name, a, shape)
    # float32 values as their shortest repr ("0.0001", not 9.999999747378752e-05)
    text_of = lambda v: [str(x) for x in v] if v.dtype == np.float32 else v.tolist()
    flat = {k: text_of(v.reshape(-1)) for k, v in columns.items()}
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(flat)
    writer.writerows(zip(*flat.values()))
    _atomic_write(Path(path), lambda f: f.write(text.getvalue().encode()))
