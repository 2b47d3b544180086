"""Oracles and registry entries for the elementwise pieces: SPEC 3 / 4 / 5 transcribed plainly.

The formulas are written exactly as the SPEC states them (soft_sqrt as
sqrt(1 + x^2) - 1, not refimpl's cancellation-free form); gate loops over
(b, n) instead of broadcasting.
"""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.elementwise import (
    gate_backward,
    gate_forward,
    gauss_backward,
    gauss_forward,
    mul_backward,
    mul_forward,
    signed_square_backward,
    signed_square_forward,
    soft_sqrt_backward,
    soft_sqrt_forward,
)
from refimpl.reference.registry import OpInfo, Sample


def signed_square_reference(x):
    return x * anp.abs(x)


def soft_sqrt_reference(x):
    return anp.sqrt(1.0 + x ** 2) - 1.0


def gauss_reference(x):
    return anp.exp(-(x ** 2))


def mul_reference(a, b):
    return a * b


def gate_reference(d, g):
    B, N, _ = d.shape
    return anp.stack([anp.stack([d[b, n] * g[b, n] for n in range(N)]) for b in range(B)])


def gate_vectorized(d, g):
    """Vectorised form for the benchmark."""
    return d * g[:, :, None]


def _sample_x(rng, dtype, size):
    # Shaped like a weight matrix (how the planes use them), |x| in [0.3, 2.5]:
    # away from x = 0, where |x| has its kink (x|x| itself is C^1 there) and
    # where the oracle's literal sqrt(1 + x^2) - 1 cancels catastrophically
    # (for a sample that is a single tiny x the oracle, not refimpl, would be
    # the inaccurate side; see derivations/soft_sqrt.md).
    shape = (size.N, size.Nout)
    magnitude = rng.uniform(0.3, 2.5, shape)
    return Sample(inputs={"x": (np.where(rng.random(shape) < 0.5, -1.0, 1.0) * magnitude).astype(dtype)})


def _sample_mul(rng, dtype, size):
    shape = (size.N, size.Nout)
    return Sample(inputs={"a": rng.standard_normal(shape).astype(dtype),
                          "b": rng.standard_normal(shape).astype(dtype)})


def _sample_gate(rng, dtype, size):
    return Sample(inputs={"d": rng.standard_normal((size.B, size.N, size.C)).astype(dtype),
                          "g": rng.uniform(0.05, 0.95, (size.B, size.N)).astype(dtype)})


def _bad_x(rng):
    return [({"x": np.arange(6).reshape(2, 3)}, {}, "'x'"),
            ({"x": [1.0, 2.0]}, {}, "'x'")]


def _bad_mul(rng):
    a = rng.standard_normal((3, 4))
    return [({"a": a, "b": rng.standard_normal((4, 3))}, {}, "'b'"),
            ({"a": a, "b": rng.standard_normal((1, 4))}, {}, "'b'"),
            ({"a": a, "b": a.astype(np.float32)}, {}, "dtype")]


def _bad_gate(rng):
    d = rng.standard_normal((4, 3, 2))
    return [({"d": d, "g": rng.standard_normal((4, 2))}, {}, "'g'"),
            ({"d": d, "g": rng.standard_normal((1, 3))}, {}, "'g'"),
            ({"d": d, "g": rng.standard_normal((4, 3)).astype(np.float32)}, {}, "dtype")]


def _unary(kind, forward, backward, reference):
    return OpInfo(name=kind, kind=kind, forward=forward, backward=backward, reference=reference,
                  sample=_sample_x, diff_inputs=("x",), derivation=f"derivations/{kind}.md",
                  bad_inputs=_bad_x, any_ndim=("x",))


OPINFOS = [
    _unary("signed_square", signed_square_forward, signed_square_backward, signed_square_reference),
    _unary("soft_sqrt", soft_sqrt_forward, soft_sqrt_backward, soft_sqrt_reference),
    _unary("gauss", gauss_forward, gauss_backward, gauss_reference),
    OpInfo(name="mul", kind="mul", forward=mul_forward, backward=mul_backward,
           reference=mul_reference, sample=_sample_mul, diff_inputs=("a", "b"),
           derivation="derivations/mul.md", bad_inputs=_bad_mul, any_ndim=("a", "b")),
    OpInfo(name="gate", kind="gate", forward=gate_forward, backward=gate_backward,
           reference=gate_reference, vectorized=gate_vectorized, sample=_sample_gate, diff_inputs=("d", "g"),
           derivation="derivations/gate.md", bad_inputs=_bad_gate),
]
