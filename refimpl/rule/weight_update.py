"""Weight-update planes, merge, orth and bias change (SPEC 5, SPEC 4 step 4).

For one layer l (1..L) with Nin = N^{l-1}, Nout = N^l, the rule reads
h_lo = h^{l-1} [B, Nin, Hd], h_up = h^l [B, Nout, Hd], x_lo = x^{l-1} [B, Nin],
x_up = x^l [B, Nout], and for M in {W^l, V^l} ([Nin, Nout]) builds ten planes,
merges them and keeps the change from shrinking M. The pieces:

- :func:`shared_planes_forward`: what does not depend on M, shared by W and V
  (the seven LowRR readouts, four of them passed through A, and P6).
- :func:`matrix_update_forward`: Mh, Q, the planes P1..P10, merge, orth and
  the final normalisation, for one M.
- :func:`bias_update_forward`: the bias change from h_up.

Each has a hand-composed backward built from the primitives' backwards.
Derivation: derivations/weight_update.md.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from refimpl.config import Config, check_config
from refimpl.ops.elementwise import (
    gauss_backward,
    gauss_forward,
    mul_backward,
    mul_forward,
    signed_square_backward,
    signed_square_forward,
    soft_sqrt_backward,
    soft_sqrt_forward,
)
from refimpl.ops.lowrr import lowrr_backward, lowrr_forward
from refimpl.ops.matmul import matmul_backward, matmul_forward
from refimpl.ops.normalize import (
    column_normalize_backward,
    column_normalize_forward,
    frobenius_normalize_backward,
    frobenius_normalize_forward,
    plane_normalize_backward,
    plane_normalize_forward,
)
from refimpl.ops.planes import (
    bias_centre_backward,
    bias_centre_forward,
    cross_cov_backward,
    cross_cov_forward,
    orth_backward,
    orth_forward,
    sym_zero_diag_backward,
    sym_zero_diag_forward,
)
from refimpl.params import N_PLANES, READOUTS, stage_theta_shapes
from refimpl.validate import check_array, check_inputs, check_named_arrays, check_shape, fail

_CROSS = ("zero", "rbf", "first")
_SQUARE = {"lin_lower": "lo", "sqr_lower": "lo", "lin_upper": "up", "sqr_upper": "up"}


# =========================================================================== shared planes

class SharedPlanes(NamedTuple):
    """The M-independent parts of SPEC 5, shared by W and V (all [Nin, Nout] unless noted).

    zero:      LowRR(h_lo, h_up; zero)                 = P3
    rbf:       LowRR(h_lo, h_up; rbf)                  (P4 = exp(-Mh^2) * rbf)
    first:     LowRR(h_lo, h_up; first)                (P5 = Mh * first)
    lin_lower: A(LowRR(h_lo, h_lo; lin_lower)/sqrt(Nin))   [Nin, Nin]   (P7 = lin_lower @ Mh)
    sqr_lower: A(LowRR(h_lo, h_lo; sqr_lower)/sqrt(Nin))   [Nin, Nin]   (P8 = sqr_lower @ Q)
    lin_upper: A(LowRR(h_up, h_up; lin_upper)/sqrt(Nout))  [Nout, Nout] (P9 = Mh @ lin_upper)
    sqr_upper: A(LowRR(h_up, h_up; sqr_upper)/sqrt(Nout))  [Nout, Nout] (P10 = Q @ sqr_upper)
    cross_cov: (1/B)(x_lo - mean_b x_lo)^T (x_up - mean_b x_up) = P6

    As a cotangent (the backward's argument), any entry may be None (zero).
    """
    zero: np.ndarray | None
    rbf: np.ndarray | None
    first: np.ndarray | None
    lin_lower: np.ndarray | None
    sqr_lower: np.ndarray | None
    lin_upper: np.ndarray | None
    sqr_upper: np.ndarray | None
    cross_cov: np.ndarray | None


class SharedPlanesCache(NamedTuple):
    lowrr: dict          # readout name -> LowRRCache
    sym: dict            # square readout name -> (SymZeroDiagCache, scale 1/sqrt(n))
    cov_cache: object    # CrossCovCache
    shapes: dict         # input and output name -> shape; "readout" -> [Hd, R]
    dtype: np.dtype


def shared_planes_forward(theta: Mapping[str, np.ndarray], h_lo: np.ndarray, h_up: np.ndarray, x_lo: np.ndarray,
                          x_up: np.ndarray, config: Config) -> tuple[SharedPlanes, SharedPlanesCache]:
    """The M-independent parts of the planes (SPEC 5), shared by W^l and V^l.

    theta: mapping with 'readout/<p>/a', 'readout/<p>/b' [Hd, R] for the seven
    readouts p (other names ignored); h_lo [B, Nin, Hd], h_up [B, Nout, Hd],
    x_lo [B, Nin], x_up [B, Nout]; one dtype.

        L_p  = LowRR(h_1, h_2; P^a = readout/p/a, P^b = readout/p/b)
        S_p  = A(L_p / sqrt(n))      for the square readouts (n = Nin or Nout)
        P6   = cross_cov(x_lo, x_up)

    Returns (SharedPlanes (see its docstring for the shapes), SharedPlanesCache).
    """
    op = "shared_planes"
    check_config(op, config)
    _, dtype = check_inputs(op, {"h_lo": "B Nin h_dims", "h_up": "B Nout h_dims", "x_lo": "B Nin",
                                 "x_up": "B Nout"},
                            {"h_lo": h_lo, "h_up": h_up, "x_lo": x_lo, "x_up": x_up},
                            {"h_dims": config.h_dims})
    check_named_arrays(op, "theta", theta, stage_theta_shapes("readout", config), dtype)
    return shared_planes_forward_unchecked(theta, h_lo, h_up, x_lo, x_up, config)


def shared_planes_forward_unchecked(theta: Mapping[str, np.ndarray], h_lo: np.ndarray, h_up: np.ndarray,
                                    x_lo: np.ndarray, x_up: np.ndarray, config: Config
                                    ) -> tuple[SharedPlanes, SharedPlanesCache]:
    """shared_planes_forward for arguments the caller has validated (update_step does, once)."""
    P = {p: (theta[f"readout/{p}/a"], theta[f"readout/{p}/b"]) for p in READOUTS}
    hs = {"lo": h_lo, "up": h_up}
    out, lowrr_caches, sym_caches = {}, {}, {}
    for p in _CROSS:                                       # derivations/weight_update.md eq. 1
        out[p], lowrr_caches[p] = lowrr_forward(h_lo, h_up, *P[p])
    for p, side in _SQUARE.items():                        # eq. 2
        h = hs[side]
        L, lowrr_caches[p] = lowrr_forward(h, h, *P[p])
        scale = 1.0 / math.sqrt(h.shape[1])                # a Python float keeps the dtype
        out[p], sc = sym_zero_diag_forward(L * scale)
        sym_caches[p] = (sc, scale)
    out["cross_cov"], cov_cache = cross_cov_forward(x_lo, x_up)   # eq. 3 (P6)
    shapes = {"h_lo": h_lo.shape, "h_up": h_up.shape, "x_lo": x_lo.shape, "x_up": x_up.shape,
              "readout": P["zero"][0].shape}
    shapes.update({k: v.shape for k, v in out.items()})
    return SharedPlanes(**out), SharedPlanesCache(lowrr_caches, sym_caches, cov_cache, shapes, h_lo.dtype)


def shared_planes_backward(dshared: SharedPlanes, cache: SharedPlanesCache
                           ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """VJP of shared_planes_forward (derivations/weight_update.md eq. 4-6).

    dshared: SharedPlanes of cotangents (None entries are zero).
    Returns (dtheta {'readout/<p>/a', 'readout/<p>/b' for all seven p}, dh_lo, dh_up,
    dx_lo, dx_up), shaped like the forward's arguments. h_lo and h_up feed
    several readouts (and twice each square one): their cotangents are summed.
    """
    op = "shared_planes_backward"
    if not isinstance(dshared, SharedPlanes):
        fail(op, f"argument 'dshared' must be a SharedPlanes, got {type(dshared).__name__}")
    sh, dtype = cache.shapes, cache.dtype
    dh = {"lo": None, "up": None}          # summed cotangents of h_lo, h_up (None = zero so far)

    def acc(side: str, g: np.ndarray) -> None:
        # lowrr_backward returns fresh arrays that nothing else references, so the first
        # one is taken over and the rest are added in place (no temporaries).
        if dh[side] is None:
            dh[side] = g
        else:
            np.add(dh[side], g, out=dh[side])

    dtheta = {}
    for p in READOUTS:
        dy = getattr(dshared, p)
        if dy is None:
            dtheta[f"readout/{p}/a"] = np.zeros(sh["readout"], dtype)
            dtheta[f"readout/{p}/b"] = np.zeros(sh["readout"], dtype)
            continue
        check_array(op, f"dshared.{p}", dy, 2)
        check_shape(op, f"dshared.{p}", dy, sh[p], f"like shared.{p}")
        if p in _SQUARE:
            sc, scale = cache.sym[p]
            dy = sym_zero_diag_backward(dy, sc).S * scale            # eq. 5
        g = lowrr_backward(dy, cache.lowrr[p])                       # eq. 4
        dtheta[f"readout/{p}/a"], dtheta[f"readout/{p}/b"] = g.pa, g.pb
        if p in _SQUARE:                                             # LowRR(h, h): both args
            acc(_SQUARE[p], g.ha)
            acc(_SQUARE[p], g.hb)
        else:
            acc("lo", g.ha)
            acc("up", g.hb)
    if dshared.cross_cov is None:
        dx_lo, dx_up = np.zeros(sh["x_lo"], dtype), np.zeros(sh["x_up"], dtype)
    else:
        check_array(op, "dshared.cross_cov", dshared.cross_cov, 2)
        check_shape(op, "dshared.cross_cov", dshared.cross_cov, sh["cross_cov"], "like shared.cross_cov")
        dx_lo, dx_up = cross_cov_backward(dshared.cross_cov, cache.cov_cache)   # eq. 6
    dh_lo = np.zeros(sh["h_lo"], dtype) if dh["lo"] is None else dh["lo"]
    dh_up = np.zeros(sh["h_up"], dtype) if dh["up"] is None else dh["up"]
    return dtheta, dh_lo, dh_up, dx_lo, dx_up


# =========================================================================== matrix update

class MatrixUpdateCache(NamedTuple):
    shape: tuple            # (Nin, Nout)
    colnorm_cache: object   # ColumnNormalizeCache (Mh)
    soft_cache: object      # soft_sqrt cache (Q)
    sq_cache: object        # signed_square cache (P2)
    gauss_cache: object     # gauss cache (exp(-Mh^2))
    p4_cache: object        # mul cache (P4 = gauss * rbf)
    p5_cache: object        # mul cache (P5 = Mh * first)
    mm_caches: tuple        # matmul caches of P7, P8, P9, P10
    pn_caches: tuple        # plane_normalize caches of P1..P10
    merge_w: np.ndarray     # theta['merge/w'] [10]
    frob_cache: object      # FrobeniusNormalizeCache (Mf)
    orth_cache: object      # OrthCache
    final_cache: object     # plane_normalize cache of dM_final


def matrix_update_forward(theta: Mapping[str, np.ndarray], M: np.ndarray, shared: SharedPlanes, config: Config
                          ) -> tuple[np.ndarray, MatrixUpdateCache]:
    """The change of one weight matrix M in {W^l, V^l} (SPEC 5).

    theta: mapping with 'merge/w' [10] (other names ignored); M [Nin, Nout]
    (not all zero); shared: the SharedPlanes of this layer; config: for eps_w.

        Mh = column_normalize(M, eps_w);  Q = sqrt(1 + Mh^2) - 1
        P1 = Mh                 P2 = Mh * |Mh|             P3 = shared.zero
        P4 = exp(-Mh^2) * rbf   P5 = Mh * first            P6 = shared.cross_cov
        P7 = lin_lower @ Mh     P8 = sqr_lower @ Q
        P9 = Mh @ lin_upper     P10 = Q @ sqr_upper
        Pt_i = P_i / sqrt(1 + mean P_i^2)
        dM_merge = (1/10) sum_i merge_w[i] Pt_i
        Mf = M / ||M||_F;  dM_orth = orth(dM_merge, Mf)
        dM_final = dM_orth / sqrt(1 + mean dM_orth^2)

    Returns (dM_final [Nin, Nout], MatrixUpdateCache). An all-zero M raises ValueError.
    """
    op = "matrix_update"
    check_config(op, config)
    if not isinstance(shared, SharedPlanes):
        fail(op, f"argument 'shared' must be a SharedPlanes, got {type(shared).__name__}")
    square = {"lin_lower": "Nin Nin", "sqr_lower": "Nin Nin", "lin_upper": "Nout Nout",
              "sqr_upper": "Nout Nout"}
    _, dtype = check_inputs(op, {"M": "Nin Nout", **{name: square.get(name, "Nin Nout")
                                                     for name in SharedPlanes._fields}},
                            {"M": M, **shared._asdict()})
    check_named_arrays(op, "theta", theta, {"merge/w": (N_PLANES,)}, dtype)
    return matrix_update_forward_unchecked(theta, M, shared, config)


def matrix_update_forward_unchecked(theta: Mapping[str, np.ndarray], M: np.ndarray, shared: SharedPlanes,
                                    config: Config) -> tuple[np.ndarray, MatrixUpdateCache]:
    """matrix_update_forward for arguments the caller has validated (update_step does, once)."""
    merge_w = theta["merge/w"]
    # Mf first: an all-zero M is outside the domain and raises before any work.
    Mf, frob_cache = frobenius_normalize_forward(M)                      # eq. 13
    Mh, colnorm_cache = column_normalize_forward(M, eps=config.eps_w)    # eq. 7
    Q, soft_cache = soft_sqrt_forward(Mh)
    P2, sq_cache = signed_square_forward(Mh)
    G, gauss_cache = gauss_forward(Mh)
    P4, p4_cache = mul_forward(G, shared.rbf)
    P5, p5_cache = mul_forward(Mh, shared.first)
    P7, c7 = matmul_forward(shared.lin_lower, Mh)
    P8, c8 = matmul_forward(shared.sqr_lower, Q)
    P9, c9 = matmul_forward(Mh, shared.lin_upper)
    P10, c10 = matmul_forward(Q, shared.sqr_upper)
    planes = (Mh, P2, shared.zero, P4, P5, shared.cross_cov, P7, P8, P9, P10)   # eq. 8

    pn_caches = []
    dM_merge = np.zeros_like(M)
    for i, P in enumerate(planes):                                       # eq. 9-10
        Pt, c = plane_normalize_forward(P)
        pn_caches.append(c)
        dM_merge += (merge_w[i] * 0.1) * Pt
    dM_orth, orth_cache = orth_forward(dM_merge, Mf)                     # eq. 11
    dM_final, final_cache = plane_normalize_forward(dM_orth)             # eq. 12
    return dM_final, MatrixUpdateCache(
        M.shape, colnorm_cache, soft_cache, sq_cache, gauss_cache, p4_cache, p5_cache,
        (c7, c8, c9, c10), tuple(pn_caches), merge_w, frob_cache, orth_cache, final_cache)


def matrix_update_backward(ddM_final: np.ndarray, cache: MatrixUpdateCache
                           ) -> tuple[dict[str, np.ndarray], np.ndarray, SharedPlanes]:
    """VJP of matrix_update_forward (derivations/weight_update.md eq. 14-20).

    ddM_final: cotangent of dM_final [Nin, Nout].
    Returns (dtheta {'merge/w': [10]}, dM [Nin, Nout], dshared: SharedPlanes of
    cotangents, every entry an array). M reaches the output through Mh and
    through Mf; both paths are summed into dM.
    """
    op = "matrix_update_backward"
    check_array(op, "ddM_final", ddM_final, 2)
    check_shape(op, "ddM_final", ddM_final, cache.shape, "like dM_final")
    ddM_orth = plane_normalize_backward(ddM_final, cache.final_cache).P  # eq. 14
    g_orth = orth_backward(ddM_orth, cache.orth_cache)                   # eq. 15
    ddM_merge = g_orth.dM

    # eq. 16: d merge_w[i] = 0.1 <ddM_merge, Pt_i>, dPt_i = 0.1 merge_w[i] ddM_merge
    dmerge = np.empty_like(cache.merge_w)
    dP = []
    for i, c in enumerate(cache.pn_caches):
        dmerge[i] = 0.1 * np.vdot(ddM_merge, c.y)
        dP.append(plane_normalize_backward(ddM_merge * (cache.merge_w[i] * 0.1), c).P)

    # eq. 17-18: back through the planes; Mh and Q accumulate from several planes.
    c7, c8, c9, c10 = cache.mm_caches
    g7 = matmul_backward(dP[6], c7)
    g8 = matmul_backward(dP[7], c8)
    g9 = matmul_backward(dP[8], c9)
    g10 = matmul_backward(dP[9], c10)
    g4 = mul_backward(dP[3], cache.p4_cache)
    g5 = mul_backward(dP[4], cache.p5_cache)
    dQ = g8.b + g10.a
    dMh = (dP[0]                                                      # P1
           + signed_square_backward(dP[1], cache.sq_cache).x          # P2
           + gauss_backward(g4.a, cache.gauss_cache).x                # P4
           + g5.a                                                     # P5
           + g7.b + g9.a                                              # P7, P9
           + soft_sqrt_backward(dQ, cache.soft_cache).x)              # P8, P10 via Q
    # eq. 19: M -> Mh and M -> Mf
    dM = (column_normalize_backward(dMh, cache.colnorm_cache).M
          + frobenius_normalize_backward(g_orth.Mf, cache.frob_cache).M)
    dshared = SharedPlanes(zero=dP[2], rbf=g4.b, first=g5.b, lin_lower=g7.a, sqr_lower=g8.a,
                           lin_upper=g9.b, sqr_upper=g10.b, cross_cov=dP[5])   # eq. 20
    return {"merge/w": dmerge}, dM, dshared


# =========================================================================== bias update

class BiasUpdateCache(NamedTuple):
    shape: tuple            # (B, N, Hd)
    hsum: np.ndarray        # sum_b h [N, Hd]
    bias_w: np.ndarray      # [Hd]
    centre_cache: object    # BiasCentreCache
    final_cache: object     # plane_normalize cache


def bias_update_forward(theta: Mapping[str, np.ndarray], h_up: np.ndarray, config: Config
                        ) -> tuple[np.ndarray, BiasUpdateCache]:
    """The bias change of layer l from h_up = h^l (SPEC 5).

    theta: mapping with 'bias/w' [Hd] (other names ignored); h_up [B, N, Hd].

        db_base[j] = (1/B) sum_b sum_k h_up[b, j, k] bias_w[k]      [N]
        db_c       = db_base - relu(mean_j db_base)
        db_final   = db_c / sqrt(1 + mean_j db_c^2)

    Returns (db_final [N], BiasUpdateCache).
    """
    op = "bias_update"
    check_config(op, config)
    _, dtype = check_inputs(op, {"h_up": "B N h_dims"}, {"h_up": h_up}, {"h_dims": config.h_dims})
    check_named_arrays(op, "theta", theta, {"bias/w": (config.h_dims,)}, dtype)
    return bias_update_forward_unchecked(theta, h_up, config)


def bias_update_forward_unchecked(theta: Mapping[str, np.ndarray], h_up: np.ndarray, config: Config
                                  ) -> tuple[np.ndarray, BiasUpdateCache]:
    """bias_update_forward for arguments the caller has validated (update_step does, once)."""
    w = theta["bias/w"]
    B, N, Hd = h_up.shape
    hsum = h_up.sum(axis=0)                                          # eq. 21
    db_base = (hsum @ w) * (1.0 / B)
    db_c, centre_cache = bias_centre_forward(db_base)                # eq. 22
    db_final, final_cache = plane_normalize_forward(db_c)            # eq. 23
    return db_final, BiasUpdateCache((B, N, Hd), hsum, w, centre_cache, final_cache)


def bias_update_backward(ddb_final: np.ndarray, cache: BiasUpdateCache) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """VJP of bias_update_forward (derivations/weight_update.md eq. 24-25).

    ddb_final: cotangent of db_final [N]. Returns (dtheta {'bias/w': [Hd]}, dh_up [B, N, Hd]).
    """
    op = "bias_update_backward"
    B, N, Hd = cache.shape
    check_array(op, "ddb_final", ddb_final, 1)
    check_shape(op, "ddb_final", ddb_final, (N,), "like db_final")
    ddb_c = plane_normalize_backward(ddb_final, cache.final_cache).P
    ddb_base = bias_centre_backward(ddb_c, cache.centre_cache).db
    s = ddb_base * (1.0 / B)
    dw = cache.hsum.T @ s                                            # eq. 24
    dh = np.broadcast_to(np.multiply.outer(s, cache.bias_w), (B, N, Hd)).copy()   # eq. 25
    return {"bias/w": dw}, dh
