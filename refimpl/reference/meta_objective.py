"""Independent transcription of SPEC 6 (meta-objective) and SPEC 7 (the
truncated unroll's J) in ``autograd.numpy``: the oracle for
refimpl/meta/meta_objective.py and refimpl/meta/unroll.py.

Written from the SPEC text alone. It shares no code with ``refimpl.ops``,
``refimpl.meta.meta_objective`` or ``refimpl.meta.unroll``; it uses the independent
base model and update step of ``refimpl.reference.update_step`` and the primitive
oracles beside it (label centring, ridge solve, row normalisation, the loss). The ridge
regression is solved with a general LU solve on the normal equations (not a
Cholesky factorisation), so autograd differentiates a different solver than
the code under test. No OPINFOS here: these are composed functions, not
registry operators.

Conventions: phi, theta are dicts with the SPEC 9 names; ``cfg`` a
``refimpl.config.Config`` (only its fields are read).
"""
import autograd.numpy as anp
import numpy as np

from refimpl.reference import update_step as step_oracle
from refimpl.reference.meta_loss import center_labels_vectorized as centred_labels, meta_loss_vectorized
from refimpl.reference.normalize import row_normalize_vectorized
from refimpl.reference.ridge import ridge_solve_vectorized


def predictions(phi, xa, ya, xb, cfg):
    """P = [x^L(x_b), 1] @ C for one labeled pair, with C fitted on (x_a, y_a)."""
    xs_a, _ = step_oracle.base_forward(phi, xa, cfg)
    xs_b, _ = step_oracle.base_forward(phi, xb, cfg)
    A = anp.concatenate([xs_a[-1], anp.ones((xa.shape[0], 1))], axis=1)
    C = ridge_solve_vectorized(A, centred_labels(ya), ridge=cfg.ridge)   # every column penalised, ones too
    Ab = anp.concatenate([xs_b[-1], anp.ones((xb.shape[0], 1))], axis=1)
    return anp.dot(Ab, C)


def pair_loss(phi, xa, ya, xb, yb, cfg):
    """(1/n_label) sum_b ||Ph_b - Yh_b||^2 for one pair."""
    P = predictions(phi, xa, ya, xb, cfg)
    return meta_loss_vectorized(row_normalize_vectorized(P, eps=cfg.eps_p), centred_labels(yb))


def meta_objective(phi, x_a, y_a, x_b, y_b, cfg):
    """SPEC 6: the mean over the n_eval pairs (axis 0 of x_a, ...) of the pair losses."""
    n_eval = x_a.shape[0]
    total = 0.0
    for e in range(n_eval):
        total = total + pair_loss(phi, x_a[e], y_a[e], x_b[e], y_b[e], cfg)
    return total / n_eval


def accuracy(phi, x_a, y_a, x_b, y_b, cfg, n_cls):
    """Fraction of rows (over all pairs) whose argmax of P over the class columns is the label's class.

    Plain numpy values only (not differentiated)."""
    hits = []
    for e in range(x_a.shape[0]):
        P = np.asarray(predictions(phi, x_a[e], y_a[e], x_b[e], cfg))
        hits.extend(np.argmax(P[:, :n_cls], axis=1) == np.argmax(y_b[e][:, :n_cls], axis=1))
    return float(np.mean(hits))


def unroll(theta, phi, x, x_a, y_a, x_b, y_b, cfg):
    """SPEC 7 truncated unroll: U = x.shape[0] rule steps from phi; step u is scored
    on its own pairs (x_a[u], ...) after the (u+1)-th update; phi itself is not scored.

    Returns (J = (1/U) sum_u MetaObjective(phi_{u+1}), final phi, [loss_u]).
    Differentiate J with respect to theta only to get SPEC 7's meta-gradient
    (phi, the start of the truncation, is then held constant)."""
    U = x.shape[0]
    losses = []
    for u in range(U):
        phi, _ = step_oracle.update_step(theta, phi, x[u], cfg)
        losses.append(meta_objective(phi, x_a[u], y_a[u], x_b[u], y_b[u], cfg))
    J = 0.0
    for loss in losses:
        J = J + loss
    return J / U, phi, losses
