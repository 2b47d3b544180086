"""The one validator family (refimpl/validate.py): each check passes good input and names bad input."""
import numpy as np
import pytest

from refimpl.validate import check_inputs, check_int, check_named_arrays, check_positive

SHAPES = {"h": "B N h_dims", "x": "B N", "W": "N_below N"}


def _arrays(B=3, N=4, Hd=2, Nb=5):
    rng = np.random.default_rng(0)
    return {"h": rng.standard_normal((B, N, Hd)), "x": rng.standard_normal((B, N)),
            "W": rng.standard_normal((Nb, N))}


def test_check_inputs_binds_each_letter_once():
    sizes, dtype = check_inputs("stage", SHAPES, _arrays(), {"h_dims": 2})
    assert sizes == {"h_dims": 2, "B": 3, "N": 4, "N_below": 5} and dtype == np.float64


def test_check_inputs_skips_absent_arguments():
    sizes, _ = check_inputs("stage", SHAPES, dict(_arrays(), W=None))
    assert "N_below" not in sizes


@pytest.mark.parametrize("change,message", [
    ({"x": np.zeros((3, 5))}, r"stage: argument 'x' must have shape \[B = 3, N = 4\]"),
    ({"W": np.zeros((5, 3))}, r"argument 'W' must have shape \[N_below, N = 4\]"),
    ({"h": np.zeros((3, 4, 3))}, r"argument 'h' must have shape \[B, N, h_dims = 2\]"),
    ({"x": np.zeros((3, 4), np.float32)}, "share one dtype"),
    ({"x": np.full((3, 4), np.nan)}, "'x' contains NaN"),
    ({"x": np.zeros((3, 4, 1))}, "'x' must have 2 dimensions"),
    ({"h": np.zeros((0, 4, 2)), "x": np.zeros((0, 4))}, r"sizes >= 1"),
])
def test_check_inputs_names_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        check_inputs("stage", SHAPES, dict(_arrays(), **change), {"h_dims": 2})


def test_check_named_arrays():
    good = {"a/w": np.zeros((2, 3)), "other": "ignored"}
    check_named_arrays("stage", "theta", good, {"a/w": (2, 3)}, np.float64)
    with pytest.raises(ValueError, match=r"theta is missing name\(s\) \['b/w'\]"):
        check_named_arrays("stage", "theta", good, {"a/w": (2, 3), "b/w": (1,)}, np.float64)
    with pytest.raises(ValueError, match=r"theta\['a/w'\] must have shape \(3, 2\)"):
        check_named_arrays("stage", "theta", good, {"a/w": (3, 2)}, np.float64)
    with pytest.raises(ValueError, match="must share one dtype"):
        check_named_arrays("stage", "theta", good, {"a/w": (2, 3)}, np.float32)


def test_check_int_and_check_positive():
    assert check_int("f", "k", np.int64(3)) == 3 and check_int("f", "n", 0, 0) == 0
    for bad in (True, 0, 1.0, "2"):
        with pytest.raises(ValueError, match=r"f: argument 'k' must be an integer >= 1"):
            check_int("f", "k", bad)
    with pytest.raises(ValueError, match=r"config: field 'n' must be an integer >= 2, got 1"):
        check_int("config", "n", 1, 2, what="field")
    assert check_positive("f", "eps", 1e-8) == 1e-8
    for bad in (0.0, -1.0, float("inf"), float("nan"), True, "1"):
        with pytest.raises(ValueError, match="must be a positive finite number"):
            check_positive("f", "eps", bad)


def test_trusted_inputs_skips_the_array_checks_only_inside_the_block():
    from refimpl.validate import check_array, check_same_dtype, check_shape, trusted_inputs

    bad = np.array([1.0, np.nan])
    with pytest.raises(ValueError, match="NaN"):
        check_array("op", "x", bad, 1)
    with trusted_inputs():
        assert check_array("op", "x", bad, 2) is bad          # neither the NaN nor the ndim is looked at
        check_shape("op", "x", bad, (3, 3))
        assert check_same_dtype("op", a=bad, b=None) == bad.dtype
    with pytest.raises(ValueError, match="dimensions"):     # the checks are back after the block
        check_array("op", "x", np.ones(2), 2)
