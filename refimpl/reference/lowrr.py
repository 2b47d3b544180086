"""Oracle and registry entries for LowRR: SPEC 3 transcribed plainly.

The readouts are written per batch element, and every output entry (i, j)
is its own explicit sum over b and k, divided by B R.
"""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.lowrr import lowrr_backward, lowrr_forward
from refimpl.reference.registry import OpInfo, Sample


def lowrr_reference(ha, hb, pa, pb):
    B, Na, _ = ha.shape
    Nb = hb.shape[1]
    R = pa.shape[1]
    ra = [anp.dot(ha[b], pa) for b in range(B)]   # r^a = h^a @ P^a, one [Na, R] per b
    rb = [anp.dot(hb[b], pb) for b in range(B)]
    rows = []
    for i in range(Na):
        row = []
        for j in range(Nb):
            total = 0.0
            for b in range(B):
                for k in range(R):
                    total = total + ra[b][i, k] * rb[b][j, k]
            row.append(total / (B * R))
        rows.append(anp.stack(row))
    return anp.stack(rows)


def lowrr_vectorized(ha, hb, pa, pb):
    """The same formula vectorised: the benchmark's autograd baseline and the
    LowRR the composed-stage oracles use."""
    B = ha.shape[0]
    R = pa.shape[1]
    ra = anp.dot(ha, pa)                                   # [B, Na, R]
    rb = anp.dot(hb, pb)                                   # [B, Nb, R]
    return anp.tensordot(ra, rb, axes=([0, 2], [0, 2])) / (B * R)


def _sample(rng, dtype, size):
    Hd = size.C
    return Sample(inputs={
        "ha": rng.standard_normal((size.B, size.N, Hd)).astype(dtype),
        "hb": rng.standard_normal((size.B, size.Nout, Hd)).astype(dtype),
        "pa": (rng.standard_normal((Hd, size.R)) / np.sqrt(Hd)).astype(dtype),
        "pb": (rng.standard_normal((Hd, size.R)) / np.sqrt(Hd)).astype(dtype),
    })


def _sample_same(rng, dtype, size):
    """ha and hb the same array, as in LowRR(h_lo, h_lo): grads are still per argument."""
    s = _sample(rng, dtype, size)
    return Sample(inputs={**s.inputs, "hb": s.inputs["ha"]})


def _bad_inputs(rng):
    ha = rng.standard_normal((4, 3, 5))
    p = rng.standard_normal((5, 2))
    return [
        ({"ha": ha, "hb": rng.standard_normal((3, 2, 5)), "pa": p, "pb": p}, {}, "'hb'"),
        ({"ha": ha, "hb": rng.standard_normal((4, 2, 6)), "pa": p, "pb": p}, {}, "'hb'"),
        ({"ha": ha, "hb": ha, "pa": rng.standard_normal((4, 2)), "pb": p}, {}, "'pa'"),
        ({"ha": ha, "hb": ha, "pa": p, "pb": rng.standard_normal((5, 3))}, {}, "'pb'"),
        ({"ha": ha, "hb": ha, "pa": p, "pb": p.astype(np.float32)}, {}, "dtype"),
    ]


OPINFOS = [
    OpInfo(name="lowrr", kind="lowrr", forward=lowrr_forward, backward=lowrr_backward, vectorized=lowrr_vectorized,
           reference=lowrr_reference, sample=_sample, diff_inputs=("ha", "hb", "pa", "pb"),
           derivation="derivations/lowrr.md", bad_inputs=_bad_inputs),
    OpInfo(name="lowrr_same_h", kind="lowrr", forward=lowrr_forward, backward=lowrr_backward, vectorized=lowrr_vectorized,
           reference=lowrr_reference, sample=_sample_same, diff_inputs=("ha", "hb", "pa", "pb"),
           derivation="derivations/lowrr.md"),
]
