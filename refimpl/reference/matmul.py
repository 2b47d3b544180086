"""Oracle and registry entry for the matrix product: every entry a looped dot product."""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.matmul import matmul_backward, matmul_forward
from refimpl.reference.registry import OpInfo, Sample


def _dot(u, v):
    total = 0.0
    for i in range(u.shape[0]):
        total = total + u[i] * v[i]
    return total


def matmul_reference(a, b):
    n_i = a.shape[0]
    n_k = b.shape[1]
    return anp.stack([anp.stack([_dot(a[i, :], b[:, k]) for k in range(n_k)])
                      for i in range(n_i)])


# The vectorised form, for the benchmark only (autograd timed fairly).
def matmul_vectorized(a, b):
    return anp.dot(a, b)


def _sample_matmul(rng, dtype, size):
    a = rng.standard_normal((size.N, size.C))
    b = rng.standard_normal((size.C, size.Nout))
    return Sample(inputs={"a": a.astype(dtype), "b": b.astype(dtype)})


def _bad_matmul(rng):
    a = rng.standard_normal((4, 3))
    return [
        ({"a": a, "b": rng.standard_normal((4, 2))}, {}, "(3, 2)"),
        ({"a": a, "b": rng.standard_normal((3, 2)).astype(np.float32)}, {}, "dtype"),
        ({"a": a[None], "b": rng.standard_normal((3, 2))}, {}, "2 dimensions"),
    ]


OPINFOS = [
    OpInfo(name="matmul", kind="matmul", forward=matmul_forward, backward=matmul_backward,
           reference=matmul_reference,
           vectorized=matmul_vectorized, sample=_sample_matmul, diff_inputs=("a", "b"),
           derivation="derivations/matmul.md", bad_inputs=_bad_matmul),
]
