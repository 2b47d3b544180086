"""Oracle and registry entries for the activations: SPEC 2 transcribed plainly.

One Python ``if`` per entry, written exactly as SPEC 2 states each
definition ("z if z > 0 else 0.2 z"), with the textbook (not the stabilised)
formulas, so the stable forms in refimpl cannot share a mistake with it. The
samples keep |z| <= ~8, where the textbook formulas are accurate.
"""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.activations import ACTIVATIONS, activation_backward, activation_forward
from refimpl.reference.registry import OpInfo, Sample


def _scalar(v, name):
    if name == "relu":
        return v if v > 0 else 0.0 * v
    if name == "leaky_relu":
        return v if v > 0 else 0.2 * v
    if name == "elu":
        return v if v > 0 else anp.exp(v) - 1.0
    if name == "tanh":
        # 1 - 2 / (exp(2v) + 1): its autograd derivative 4u / (u + 1)^2 (u = exp(2v))
        # has no cancellation, so the oracle's tanh' is accurate in the tails too.
        return 1.0 - 2.0 / (anp.exp(2.0 * v) + 1.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + anp.exp(-v))
    if name == "swish":
        return v * (1.0 / (1.0 + anp.exp(-v)))
    if name == "softplus":
        return anp.log(1.0 + anp.exp(v))
    if name == "step":
        # 0 * v keeps the entry a (constant) function of z, so autograd
        # returns the zero gradient instead of warning about independence.
        return 0.0 * v + (1.0 if v > 0 else 0.0)
    raise ValueError(f"activation: unknown name {name!r}")


def activation_reference(z, *, name):
    flat = anp.reshape(z, (-1,))
    entries = [_scalar(flat[i], name) for i in range(flat.shape[0])]
    return anp.reshape(anp.stack(entries), z.shape)


def activation_vectorized(z, *, name):
    """The same functions in vectorised autograd.numpy, for the benchmark only."""
    pos = z > 0
    if name == "relu":
        return anp.where(pos, z, 0.0 * z)
    if name == "leaky_relu":
        return anp.where(pos, z, 0.2 * z)
    if name == "elu":
        return anp.where(pos, z, anp.exp(anp.minimum(z, 0.0)) - 1.0)
    if name == "tanh":
        return anp.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + anp.exp(-z))
    if name == "swish":
        return z / (1.0 + anp.exp(-z))
    if name == "softplus":
        return anp.logaddexp(0.0, z)
    return 0.0 * z + anp.where(pos, 1.0, 0.0)


def _sample(rng, dtype, size):
    # [B, N] like the base model; |z| >= 0.05 keeps every entry off the kink at 0.
    z = rng.standard_normal((size.B, size.N)) * 2.0
    z = np.where(z >= 0, 1.0, -1.0) * (0.05 + np.abs(z))
    return Sample(inputs={"z": z.astype(dtype)}, attrs={})


def _make_sample(name):
    def sample(rng, dtype, size):
        s = _sample(rng, dtype, size)
        return Sample(inputs=s.inputs, attrs={"name": name})
    return sample


def _bad_inputs(rng):
    z = rng.standard_normal((4, 3))
    return [
        ({"z": z}, {"name": "gelu"}, "leaky_relu"),   # the message lists the valid names
        ({"z": z}, {"name": "RELU"}, "name"),
        ({"z": z}, {"name": None}, "softplus"),
        ({"z": z.astype(np.int64)}, {"name": "relu"}, "dtype"),
    ]


OPINFOS = [
    OpInfo(name=f"activation_{name}", kind="activation", forward=activation_forward,
           backward=activation_backward, reference=activation_reference,
           sample=_make_sample(name), diff_inputs=("z",),
           derivation="derivations/activations.md", bad_inputs=_bad_inputs, any_ndim=("z",),
           vectorized=activation_vectorized)
    for name in ACTIVATIONS
]
