"""Oracle and registry entries for ConvBatch / ConvUnit: SPEC 3 transcribed plainly.

Every output vector y[b, n, :] is built as bias + sum over taps k and input
channels c of m[source, c] * w[k, c, :], skipping sources outside the array
(the zero padding). No im2col, no padding array, no matmul: a wrong shift
direction or a wrong edge in refimpl cannot be shared here.
"""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.conv import conv_batch_backward, conv_batch_forward, conv_unit_backward, conv_unit_forward
from refimpl.reference.registry import OpInfo, Sample


def _conv_reference(m, w, bias, along_batch):
    B, N, C = m.shape
    K, _, Cout = w.shape
    half = (K - 1) // 2
    rows = []
    for b in range(B):
        row = []
        for n in range(N):
            acc = 0.0 if bias is None else bias
            for k in range(K):
                src_b, src_n = (b + k - half, n) if along_batch else (b, n + k - half)
                if not (0 <= src_b < B and 0 <= src_n < N):
                    continue  # m = 0 outside the array
                for c in range(C):
                    acc = acc + m[src_b, src_n, c] * w[k, c]
            row.append(acc)  # the centre tap is always inside, so acc is a [Cout] vector
        rows.append(anp.stack(row))
    return anp.stack(rows)


def conv_batch_reference(m, w, bias=None):
    return _conv_reference(m, w, bias, along_batch=True)


def conv_unit_reference(m, w, bias=None):
    return _conv_reference(m, w, bias, along_batch=False)


def conv_vectorized(m, w, axis, bias=None):
    """SPEC 3 ConvBatch (axis 0) / ConvUnit (axis 1) vectorised, zero 'same' padding, odd K:
    the benchmark's autograd baseline and the convolution the composed-stage oracles use.

    out[b,n,o] = bias[o] + sum_k sum_c m[b + k - (K-1)/2, n, c] w[k,c,o] (index shifted along ``axis``)."""
    K = w.shape[0]
    half = (K - 1) // 2
    length = m.shape[axis]
    pad_shape = list(m.shape)
    pad_shape[axis] = half
    zeros = anp.zeros(pad_shape, dtype=m.dtype)
    padded = anp.concatenate([zeros, m, zeros], axis=axis) if half else m
    out = 0.0
    for k in range(K):
        shifted = padded[k:k + length] if axis == 0 else padded[:, k:k + length]
        out = out + anp.dot(shifted, w[k])
    if bias is not None:
        out = out + bias
    return out


def conv_batch_vectorized(m, w, bias=None):
    return conv_vectorized(m, w, 0, bias)


def conv_unit_vectorized(m, w, bias=None):
    return conv_vectorized(m, w, 1, bias)


def _sampler(with_bias):
    def sample(rng, dtype, size):
        inputs = {"m": rng.standard_normal((size.B, size.N, size.C)).astype(dtype),
                  "w": (rng.standard_normal((size.K, size.C, size.Cout))
                        / np.sqrt(size.K * size.C)).astype(dtype)}
        if with_bias:
            inputs["bias"] = (0.5 * rng.standard_normal(size.Cout)).astype(dtype)
        return Sample(inputs=inputs)
    return sample


def _bad_inputs(rng):
    m = rng.standard_normal((4, 3, 2))
    return [
        ({"m": m, "w": rng.standard_normal((2, 2, 3))}, {}, "kernel size"),
        ({"m": m, "w": rng.standard_normal((4, 2, 3))}, {}, "kernel size"),
        ({"m": m, "w": rng.standard_normal((3, 5, 3))}, {}, "'w'"),
        ({"m": m, "w": rng.standard_normal((3, 2, 3)), "bias": np.zeros(2)}, {}, "'bias'"),
        ({"m": m, "w": rng.standard_normal((3, 2, 3)).astype(np.float32)}, {}, "dtype"),
        ({"m": m.astype(np.int64), "w": rng.standard_normal((3, 2, 3))}, {}, "'m'"),
    ]


OPINFOS = [
    OpInfo(name="conv_batch", kind="conv_batch", forward=conv_batch_forward,
           backward=conv_batch_backward, reference=conv_batch_reference, vectorized=conv_batch_vectorized, sample=_sampler(True),
           diff_inputs=("m", "w", "bias"), derivation="derivations/conv_batch.md",
           bad_inputs=_bad_inputs),
    OpInfo(name="conv_batch_nobias", kind="conv_batch", forward=conv_batch_forward,
           backward=conv_batch_backward, reference=conv_batch_reference, vectorized=conv_batch_vectorized, sample=_sampler(False),
           diff_inputs=("m", "w", "bias"), derivation="derivations/conv_batch.md"),
    OpInfo(name="conv_unit", kind="conv_unit", forward=conv_unit_forward,
           backward=conv_unit_backward, reference=conv_unit_reference, vectorized=conv_unit_vectorized, sample=_sampler(True),
           diff_inputs=("m", "w", "bias"), derivation="derivations/conv_unit.md",
           bad_inputs=_bad_inputs),
    OpInfo(name="conv_unit_nobias", kind="conv_unit", forward=conv_unit_forward,
           backward=conv_unit_backward, reference=conv_unit_reference, vectorized=conv_unit_vectorized, sample=_sampler(False),
           diff_inputs=("m", "w", "bias"), derivation="derivations/conv_unit.md"),
]
