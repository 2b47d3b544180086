"""Oracles and registry entries for SPEC 6's label centring and loss,
transcribed plainly: every sum is an explicit loop over rows and columns."""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.meta_loss import center_labels_backward, center_labels_forward, meta_loss_backward, meta_loss_forward
from refimpl.reference.registry import OpInfo, Sample


def center_labels_reference(Y):
    n, c = Y.shape
    total = 0.0
    for b in range(n):
        for j in range(c):
            total = total + Y[b, j]
    mean = total / (n * c)                        # mean over all entries: a scalar
    Yc = Y - mean
    sq = 0.0
    for b in range(n):
        row = 0.0
        for j in range(c):
            row = row + Yc[b, j] ** 2             # sum_c Yc[b, c]^2
        sq = sq + row
    return Yc / anp.sqrt(sq / n)                  # / sqrt(mean_b sum_c Yc^2)


def meta_loss_reference(Ph, Yh):
    n, c = Ph.shape
    total = 0.0
    for b in range(n):
        row = 0.0
        for j in range(c):
            row = row + (Ph[b, j] - Yh[b, j]) ** 2    # ||Ph_b - Yh_b||^2
        total = total + row
    return anp.reshape(total / n, ())


def center_labels_vectorized(Y):
    """Vectorised autograd.numpy forms, for the benchmark only."""
    Yc = Y - anp.mean(Y)
    return Yc / anp.sqrt(anp.sum(Yc ** 2) / Y.shape[0])


def meta_loss_vectorized(Ph, Yh):
    return anp.sum((Ph - Yh) ** 2) / Ph.shape[0]


def _labels(rng, n, n_cls, n_reg):
    """SPEC 6 targets: one-hot over n_cls >= 2 classes, then n_reg columns in [-1, 1]."""
    onehot = np.eye(n_cls)[rng.integers(0, n_cls, size=n)]
    reg = rng.uniform(-1.0, 1.0, size=(n, n_reg))
    return np.concatenate([onehot, reg], axis=1)


def _sample_center(rng, dtype, size):
    Y = _labels(rng, size.B + 1, size.C + 1, size.Nout - 1)
    return Sample(inputs={"Y": Y.astype(dtype)})


def _sample_loss(rng, dtype, size):
    # Ph: unit-norm rows (what RowNormalize gives); Yh: centred labels.
    n, c = size.B + 1, size.C + 1
    P = rng.standard_normal((n, c))
    Ph = P / np.sqrt(np.sum(P * P, axis=1, keepdims=True))
    Yc = _labels(rng, n, c, 0)
    Yc = Yc - Yc.mean()
    Yh = Yc / np.sqrt(np.sum(Yc * Yc) / n)
    return Sample(inputs={"Ph": Ph.astype(dtype), "Yh": Yh.astype(dtype)})


def _bad_center(rng):
    return [
        ({"Y": np.full((4, 3), 0.25)}, {}, "all entries equal"),
        ({"Y": np.zeros((1, 1))}, {}, "all entries equal"),
        ({"Y": np.zeros((0, 3))}, {}, "empty"),
        ({"Y": np.eye(3, dtype=np.int64)}, {}, "dtype"),
    ]


def _bad_loss(rng):
    P = rng.standard_normal((5, 3))
    return [
        ({"Ph": P, "Yh": P[:, :2]}, {}, "'Yh'"),
        ({"Ph": P, "Yh": P[:1]}, {}, "'Yh'"),                  # no broadcasting over rows
        ({"Ph": P, "Yh": P.astype(np.float32)}, {}, "dtype"),
        ({"Ph": P[:0], "Yh": P[:0]}, {}, "'Ph'"),
    ]


OPINFOS = [
    OpInfo(name="center_labels", kind="center_labels", forward=center_labels_forward,
           backward=center_labels_backward, reference=center_labels_reference,
           sample=_sample_center, diff_inputs=("Y",), derivation="derivations/center_labels.md",
           bad_inputs=_bad_center, vectorized=center_labels_vectorized),
    OpInfo(name="meta_loss", kind="meta_loss", forward=meta_loss_forward,
           backward=meta_loss_backward, reference=meta_loss_reference, sample=_sample_loss,
           diff_inputs=("Ph", "Yh"), derivation="derivations/meta_loss.md",
           bad_inputs=_bad_loss, vectorized=meta_loss_vectorized),
]
