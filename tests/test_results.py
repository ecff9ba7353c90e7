import json

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


def test_run_in_pieces_computes_only_missing_pieces(tmp_path):
    results.prepare(tmp_path, {})
    calls = []

    def piece(i):
        calls.append(i)
        return {"x": np.full((2, 3), i)}

    first = results.run_in_pieces(tmp_path, 4, piece)
    (tmp_path / "pieces" / "piece_00002.npz").unlink()
    second = results.run_in_pieces(tmp_path, 4, piece)
    assert calls == [0, 1, 2, 3, 2]
    np.testing.assert_array_equal(first["x"], second["x"])
    assert first["x"].shape == (8, 3)


def test_csv_one_row_per_run(tmp_path):
    arrays = {"learning_rate": np.array([0.1, 0.2]), "w0": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
              "final_loss": np.arange(6.0).reshape(2, 3), "diverged_step": np.array([[-1, 2, -1], [3, -1, -1]])}
    results.save(tmp_path, arrays, {})
    results.to_csv(results.load(tmp_path), tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "learning_rate,w0_0,w0_1,final_loss,diverged_step"
    assert lines[1:3] == ["0.1,1.0,2.0,0.0,-1", "0.1,3.0,4.0,1.0,2"]
    assert lines[6] == "0.2,5.0,6.0,5.0,-1" and len(lines) == 7
