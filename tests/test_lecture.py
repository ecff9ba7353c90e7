"""Every number of the lecture, at the lecture's precision, and the reproduce command."""

import json
import math
import subprocess
import sys

import pytest

from jaxdescent.lecture import reproduce

ROWS = {r.quantity: r for r in reproduce()}


def test_every_slide_number_agrees_except_the_rounded_iterate():
    disagree = [q for q, r in ROWS.items() if r.agrees is False]
    assert disagree == ["α = 1: iterate 2"]
    assert sum(r.agrees is True for r in ROWS.values()) >= 20


@pytest.mark.parametrize(
    "quantity, value, decimals",
    [
        ("grid w ∈ {−2, −1.99, …, 2}: argmin w", 0.75, 2),
        ("grid w ∈ {−2, −1.99, …, 2}: y(argmin)", -0.439087, 6),
        ("grid w ∈ {−2, −1.999, …, 2}: argmin w", 0.755, 3),
        ("grid w ∈ {−2, −1.999, …, 2}: y(argmin)", -0.439118, 6),
        ("w⁵ + w − 1 = 0: root w* (Newton)", 0.754878, 6),
        ("f(w*)", -0.439118, 6),
        ("y(1.9)", 7.75, 2),
        ("f′(1.9)", 25.66, 2),
        ("α = 1: iterate 1 (1.9 − 25.66)", -23.76, 2),
        ("α = 0.01: iterate 1 (1.9 − 0.01·25.66)", 1.64, 2),
        ("α = 0.01: iterate 2 (1.64 − 0.01·12.50)", 1.52, 2),
        ("α = 0.01: y(1.64)", 2.95, 2),
        ("α = 0.01: f′(1.64)", 12.50, 2),
        ("α = 0.01: y(1.52)", 1.69, 2),
        ("α = 0.01: f′(1.52)", 8.63, 2),
        ("α = 0.01: y(0.76)", -0.44, 2),
        ("α = 0.01: f′(0.76)", 0.01, 2),
        ("bowl y(−8, 7)", 177, 0),
        ("bowl ∂y/∂w₁(−8, 7)", -32, 0),
        ("bowl ∂y/∂w₂(−8, 7)", 14, 0),
        ("bowl: w₁ after 100 steps of α = 0.1", 0.0, 6),
        ("bowl: w₂ after 100 steps of α = 0.1", 0.0, 6),
        ("y = w² + 2w + 3: minimum w", -1.0, 6),
    ],
)
def test_lecture_number(quantity, value, decimals):
    assert round(ROWS[quantity].float64, decimals) == pytest.approx(value)
    assert round(ROWS[quantity].float32, decimals) == pytest.approx(value)


def test_the_slides_rounding_is_explained_not_faked():
    assert round(ROWS["α = 1: iterate 2"].float64, 2) == 7_573_954.90
    assert round(ROWS["α = 1: y(−23.76)"].float64) == 29_986_916  # f(−23.76) = 29,986,915.76
    assert round(ROWS["α = 1: f′(−23.76)"].float64) == -7_572_401  # −7,572,400.96
    assert "rounded" in ROWS["α = 1: iterate 2"].note


def test_float32_blow_up():
    assert math.isinf(ROWS["α = 1: y(iterate 2)"].float32)
    assert ROWS["α = 1: iterate 3"].float32 == pytest.approx(-2.49e34, rel=1e-2)
    assert math.isinf(ROWS["α = 1: iterate 4"].float32)
    assert math.isfinite(ROWS["α = 1: iterate 4"].float64)


def test_slow_path_reaches_076():
    step = int(ROWS["α = 0.01: first step with w ≈ 0.76"].float32)
    assert 50 < step < 300
    assert ROWS["α = 0.01: w after 1000 steps"].float64 == pytest.approx(0.754878, abs=1e-6)


@pytest.mark.slow  # a subprocess: over 10 s on 2 cores
def test_cli_json():
    out = subprocess.run([sys.executable, "-m", "jaxdescent.cli", "reproduce", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    assert {r["quantity"] for r in rows} == set(ROWS)
    assert any(r["agrees"] is False for r in rows)


@pytest.mark.slow  # a subprocess: over 10 s on 2 cores
def test_cli_table_and_script():
    out = subprocess.run([sys.executable, "experiments/reproduce_lecture.py"],
                         capture_output=True, text=True, check=True).stdout
    assert "7,573,954.90" in out and "7,572,376.24" in out and "inf" in out


def test_the_networks_question_mark_is_exactly_zero_and_the_ste_is_not():
    for name in ("W₁", "W₂"):
        assert ROWS[f"network on XOR: max |∂MSE/∂{name}|, true step"].float32 == 0.0
        assert ROWS[f"network on XOR: max |∂MSE/∂{name}|, true step"].float64 == 0.0
        assert ROWS[f"network on XOR: max |∂MSE/∂{name}|, identity STE"].float32 > 0.1
