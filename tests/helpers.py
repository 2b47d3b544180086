"""Helpers shared by the tests of the composed stages (no test module imports another)."""
import numpy as np

#: Gradient tolerance of the composed-stage checks in float64.
GRAD_RTOL = 1e-8


def grad_errors(actual, reference):
    """Per-leaf SPEC 10 normwise relative error, denominator floored at 1e-6 x the case's largest grad.

    Some gradients are exactly zero in exact arithmetic: with a batch of one,
    ConvBatch is pointwise, so a per-channel constant added before it (a
    beta, the bias channel) is removed again by the next batch norm. Both
    sides are then rounding noise (~1e-16 of the scale) and the pure relative
    error would divide noise by noise; the floor measures them against the
    scale of the case instead (so such a leaf passes 1e-8 only when it is
    within 1e-14 of the scale, absolutely). Any leaf whose largest grad is
    above 1e-6 of the scale is held to the plain relative error.
    """
    scale = max(float(np.max(np.abs(r))) for r in reference.values() if np.size(r))
    errors = {}
    for k, r in reference.items():
        a = np.asarray(actual[k], dtype=np.float64)
        assert a.shape == np.shape(r), f"grad {k}: shape {a.shape} vs reference {np.shape(r)}"
        errors[k] = float(np.max(np.abs(a - r))) / max(float(np.max(np.abs(r))), 1e-6 * scale, 1e-300)
    return errors


def assert_ok(fwd_err, errors, rtol=GRAD_RTOL):
    assert fwd_err <= 1e-12, f"forward error {fwd_err:.2e}"
    bad = {k: f"{v:.2e}" for k, v in errors.items() if not v <= rtol}
    assert not bad, f"grad errors above {rtol:g}: {bad}"


def stub_meta_gradient(theta, phi, batches, config, *, n_cls):
    """A cheap deterministic stand-in for refimpl.meta.unroll.meta_gradient, for trainer tests:
    deterministic in its inputs like the real one (J from the data, dtheta from theta and J)."""
    from refimpl.meta.unroll import MetaGradient
    from refimpl.train.tasks import dataset

    U = batches.x.shape[0]
    assert batches.x.shape[1:] == (config.batch_size, config.layer_sizes[0])
    assert batches.y_a.shape[-1] == n_cls + dataset("glyphs").n_reg
    J = float(np.mean(batches.x)) + 0.01 * float(np.mean(phi["layer1/b"]))
    dtheta = {k: np.sin(3.0 * v + J).astype(v.dtype) for k, v in theta.items()}
    phi_final = {k: (0.9 * v + 0.001 * J).astype(v.dtype) for k, v in phi.items()}
    return MetaGradient(J, dtheta, phi_final, [J] * U, [0.5] * U)
