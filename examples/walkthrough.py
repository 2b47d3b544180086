# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A walkthrough of the learned update rule
#
# This notebook follows one **unsupervised update step** of the rule of Metz et al.,
# *Meta-Learning Update Rules for Unsupervised Representation Learning* (ICLR 2019,
# arXiv:1804.00222), on the `tiny` preset, tensor by tensor; then takes one
# **meta-gradient**; then **meta-trains** the rule for about a minute.
#
# It is a plain Python script in jupytext's "percent" format: run it with
# `.venv/bin/python examples/walkthrough.py`, or open it as a notebook
# (`jupytext --to notebook examples/walkthrough.py`, or directly in Jupyter with
# jupytext installed). Its figures are written to `runs/walkthrough/` (untracked);
# `examples/walkthrough.py --update-docs` rewrites the committed ones in `docs/walkthrough/`.
#
# What to read beside it: `docs/SPEC.md` (the algorithm; "SPEC n" is its section n)
# and `refimpl/reference/update_step.py`, the whole step as one plain transcription.
# The step is computed here with that transcription, and checked against refimpl's
# own `update_step` (hand-written backward, same numbers).
#
# Set `REFIMPL_WALKTHROUGH_FAST=1` to shrink the meta-training to a few seconds
# (the test suite does), and `REFIMPL_WALKTHROUGH_OUT=DIR` to write the figures elsewhere.

# %%
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")          # a script: figures go to files only
import matplotlib.pyplot as plt
import numpy as np

import refimpl
from refimpl.params import READOUTS
from refimpl.reference import update_step as oracle

FAST = os.environ.get("REFIMPL_WALKTHROUGH_FAST") == "1"


def repository_root() -> Path:
    start = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    for folder in [start, *start.parents]:
        if (folder / "pyproject.toml").is_file():
            return folder
    return Path.cwd()


# The committed figures (docs/walkthrough/) are rewritten only on request (--update-docs), so a run
# leaves the clone clean; the fast mode (for the test suite) writes to a temporary directory.
UPDATE_DOCS = "--update-docs" in sys.argv[1:]
if UPDATE_DOCS:
    _DEFAULT_OUT = repository_root() / "docs" / "walkthrough"
elif FAST:
    _DEFAULT_OUT = Path(tempfile.mkdtemp(prefix="walkthrough-"))
else:
    _DEFAULT_OUT = repository_root() / "runs" / "walkthrough"
OUT = Path(os.environ.get("REFIMPL_WALKTHROUGH_OUT") or _DEFAULT_OUT)
OUT.mkdir(parents=True, exist_ok=True)


def save(fig, name: str) -> None:
    fig.savefig(OUT / name, dpi=90, bbox_inches="tight")
    if "ipykernel" in sys.modules:
        plt.show()
    else:
        plt.close(fig)
    print(f"figure: {OUT / name}")


# %% [markdown]
# ## 1. The data flow of one update step (SPEC 4 and 5)
#
# The base model (parameters **phi**: forward weights W, backward weights V, biases b
# per layer) runs forward on an unlabeled batch. The rule (parameters **theta**,
# shared by every layer and unit) sends a top-down signal d from the top layer down
# through V, computes per-unit features h at every layer, and turns h and the
# activations x of the two layers a weight matrix connects into ten "planes": ten
# candidate changes of that matrix. Their learned mixture, corrected so that it
# never points against the weights, becomes the change; a moving average applies it.

# %%
def draw_data_flow():
    boxes = {
        "x0": (0.5, 9.0, "unlabeled batch x^0 [B, N^0]"),
        "base": (0.5, 7.7, "base model forward (phi: W, b)\nx^l [B, N^l], z^l  (SPEC 2)"),
        "topd": (0.5, 6.3, "TopD(x^L): conv-BN-relu x2, conv\nd^L [B, N^L, D]  (SPEC 4)"),
        "ch": (0.5, 4.9, "ComputeH(d^l, x^l, z^l, W, b)\nh^l [B, N^l, Hd]  (SPEC 4)"),
        "ep": (0.5, 3.5, "error propagation through V^l\nd^(l-1) [B, N^(l-1), D]  (SPEC 4 step 3)"),
        "planes": (0.5, 2.1, "ten planes from h^(l-1), h^l, x^(l-1), x^l, M\nmerge (theta merge/w), orth, normalise"),
        "ema": (0.5, 0.7, "moving average: M <- (1 - lr_phi) M + lr_phi dM_final\nphi_(t+1)  (SPEC 4 step 5, SPEC 5)"),
    }
    fig, ax = plt.subplots(figsize=(7.5, 8.5))
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(0, 9.7)
    ax.axis("off")
    for _, (x, y, text) in boxes.items():
        ax.text(x, y, text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.4", fc="#eef3fb", ec="#3a5a8c"))
    order = ["x0", "base", "topd", "ch", "ep", "planes", "ema"]
    for a, b in zip(order, order[1:]):
        ax.annotate("", xy=(0.5, boxes[b][1] + 0.45), xytext=(0.5, boxes[a][1] - 0.45),
                    arrowprops=dict(arrowstyle="->", color="#3a5a8c"))
    ax.annotate("for l = L .. 1:\nd^(l-1) feeds\nComputeH one layer down", xy=(0.86, 4.9), xytext=(0.93, 3.5),
                fontsize=8, ha="center", arrowprops=dict(arrowstyle="->", color="#b04a2f",
                                                          connectionstyle="arc3,rad=0.4"))
    ax.text(0.02, 2.1, "per layer,\nfor W and V\n(b: its own\nbias change)", fontsize=8, va="center")
    ax.set_title("One unsupervised update step: phi_t -> phi_(t+1)")
    return fig


save(draw_data_flow(), "dataflow.png")

# %% [markdown]
# ## 2. One update step on the `tiny` preset
#
# `tiny` has pairwise different sizes, so every shape below tells which dimension is
# which: batch B = 7, layer widths N = [15, 9, 14, 8] (L = 3 layers), top-down
# channels D = 6, h channels Hd = 11, readout rank R = 2. The input is uniform in
# [0, 1] (tiny's 15 inputs are not an image).

# %%
config = refimpl.preset("tiny")
rng = np.random.default_rng(0)
theta = refimpl.init_theta(config, rng)
phi = refimpl.init_phi(config, rng)
x = rng.uniform(0.0, 1.0, (config.batch_size, config.layer_sizes[0]))
L = len(config.layer_sizes) - 1

phi_next, deltas, inside = oracle.update_step(theta, phi, x, config, return_internals=True)
phi_next_refimpl = refimpl.update_step(theta, phi, x, config)
agreement = max(float(np.max(np.abs(phi_next[k] - phi_next_refimpl[k]))) for k in phi)
print(f"transcription vs refimpl.update_step: largest difference {agreement:.1e}")
assert agreement < 1e-12

# %% [markdown]
# Every tensor of the step, with its shape (theta and phi use the SPEC 9 names):

# %%
rows = [(f"theta {k}", v.shape) for k, v in theta.items()]
rows += [(f"phi {k}", v.shape) for k, v in phi.items()]
rows += [("x (input)", x.shape)]
rows += [(f"x^{l}", np.shape(inside["xs"][l])) for l in range(L + 1)]
rows += [(f"z^{l}", np.shape(inside["zs"][l])) for l in range(1, L + 1)]
rows += [(f"d^{l}", np.shape(inside["d"][l])) for l in range(L, -1, -1)]
rows += [(f"h^{l}", np.shape(inside["h"][l])) for l in range(L, -1, -1)]
rows += [(f"change {k}", np.shape(v)) for k, v in deltas.items()]
rows += [(f"phi_next {k}", np.shape(v)) for k, v in phi_next.items()]
width = max(len(name) for name, _ in rows)
print(f"{'tensor':<{width}}  shape")
for name, shape in rows:
    print(f"{name:<{width}}  {list(shape)}")

# %% [markdown]
# ### d and h per layer
#
# d^l (the top-down signal, D channels) and h^l (the rule's per-unit features,
# Hd channels) for the first example of the batch: one image per layer, units down,
# channels across.

# %%
fig, axes = plt.subplots(2, L + 1, figsize=(11, 5.5))
for col, l in enumerate(range(L, -1, -1)):
    for row, (name, value) in enumerate((("d", inside["d"][l]), ("h", inside["h"][l]))):
        ax = axes[row, col]
        image = np.asarray(value)[0]
        v = np.abs(image).max() or 1.0
        im = ax.imshow(image, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"{name}^{l}  {list(np.shape(value))}", fontsize=9)
        ax.set_xlabel("channel")
        ax.set_ylabel("unit")
fig.suptitle("top-down signal d and features h, example 0 (blue < 0 < red)")
fig.tight_layout()
save(fig, "d_and_h.png")

# %% [markdown]
# ### The ten planes of one weight matrix (SPEC 5)
#
# We pick the first matrix (W, then V, of layer 1, 2, ...) whose merged change
# points against it, so that the orth correction below has something to do. At
# initialisation merge/w is 0.1 for every plane and often no matrix qualifies; then
# this section negates merge/w (which negates the merge) and recomputes the step
# with that theta, for these pictures only.
#
# The planes, written out here from SPEC 5 as `matrix_update` in
# `refimpl/reference/update_step.py` computes them. `Mh` is W with unit-RMS columns,
# `Q = sqrt(1 + Mh^2) - 1`; the seven readouts come from h of the two layers, and
# P6 is the cross-covariance of the activations. The check below recomputes the
# merged change from these planes and compares it with the transcription's own.

# %%
def shared(l):
    return oracle.shared_planes(theta, inside["h"][l - 1], inside["h"][l], inside["xs"][l - 1], inside["xs"][l])


def against(merge_w):
    return [(l, m) for l in range(1, L + 1) for m in ("W", "V")
            if oracle.matrix_update(merge_w, phi[f"layer{l}/{m}"], shared(l), config.eps_w, parts=True)[2] < 0]


theta_pic, phi_next_pic = theta, phi_next
if not against(theta["merge/w"]):
    theta_pic = dict(theta, **{"merge/w": -theta["merge/w"]})
    phi_next_pic = oracle.update_step(theta_pic, phi, x, config)[0]
    print("no merged change points against its matrix at init: merge/w negated for the pictures")
l, which = (against(theta_pic["merge/w"]) or [(1, "W")])[0]
M = phi[f"layer{l}/{which}"]
s = shared(l)
Mh = M / np.sqrt(np.mean(M ** 2, axis=0, keepdims=True) + config.eps_w)
Q = np.sqrt(1.0 + Mh ** 2) - 1.0
planes = {
    "P1 Mh": Mh, "P2 Mh|Mh|": Mh * np.abs(Mh), "P3 zero": s["zero"], "P4 gauss*rbf": np.exp(-Mh ** 2) * s["rbf"],
    "P5 Mh*first": Mh * s["first"], "P6 cross_cov": s["cross_cov"], "P7 lin_lower@Mh": s["lin_lower"] @ Mh,
    "P8 sqr_lower@Q": s["sqr_lower"] @ Q, "P9 Mh@lin_upper": Mh @ s["lin_upper"], "P10 Q@sqr_upper": Q @ s["sqr_upper"],
}
assert len(planes) == 10 and len(READOUTS) == 7
merge = sum(w * oracle.plane_norm(P) for w, P in zip(theta_pic["merge/w"], planes.values())) / 10.0
final, orth, ip = oracle.matrix_update(theta_pic["merge/w"], M, s, config.eps_w, parts=True)
Mf = M / np.sqrt(np.sum(M ** 2))
assert np.allclose(merge + Mf * max(-float(np.sum(merge * Mf)), 0.0), orth, rtol=0, atol=1e-12)

fig, axes = plt.subplots(2, 5, figsize=(13, 5.5))
for ax, (name, P) in zip(axes.ravel(), planes.items()):
    v = np.abs(P).max() or 1.0
    im = ax.imshow(P, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"{name}\nmerge/w {theta_pic['merge/w'][list(planes).index(name)]:+.2f}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"the ten planes of {which}^{l} {list(M.shape)} (rows: N^{l - 1} inputs, columns: N^{l} units)")
fig.tight_layout()
save(fig, "planes.png")

# %% [markdown]
# ### Merge, orth correction, and the weights before and after
#
# The merge is the theta-weighted mean of the normalised planes. `orth` adds back
# the part of it that points against M: with ip = <merge, M/||M||_F>, it adds
# relu(-ip) M/||M||_F, so the change never points against the weights
# (<dM, M> >= 0). The moving average still shrinks M by the factor 1 - lr_phi.

# %%
ip = float(np.sum(merge * Mf))
print(f"<merge, Mf> = {ip:+.4f}: the orth correction is {'active' if ip < 0 else 'inactive (adds nothing)'}")
M_next = phi_next_pic[f"layer{l}/{which}"]
print(f"<orth, M> = {float(np.sum(orth * M)):+.4f} (>= 0 by construction)")
panels = [("merge", merge), ("orth correction (orth - merge)", orth - merge), (f"d{which}_final", final),
          (f"{which} before", M), (f"{which} after", M_next),
          (f"{which} after - {which} before (lr_phi {config.lr_phi})", M_next - M)]
fig, axes = plt.subplots(2, 3, figsize=(11, 6))
for ax, (name, P) in zip(axes.ravel(), panels):
    v = np.abs(P).max() or 1.0
    im = ax.imshow(P, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
    ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.suptitle(f"{which}^{l}: from the merged change to the new weights")
fig.tight_layout()
save(fig, "merge_orth_weights.png")

# %% [markdown]
# ## 3. One meta-gradient (SPEC 6 and 7)
#
# The meta-objective scores phi by few-shot ridge regression on its top features;
# the meta-gradient differentiates the mean score of a truncated unroll of U update
# steps with respect to theta (refimpl's hand-written VJP through every step). A
# finite difference along one random direction checks it.

# %%
U, n_label, n_cls, n_reg = 3, 16, 5, 2
shape = (U, config.n_eval, n_label)


def targets():
    return np.concatenate([np.eye(n_cls)[rng.integers(0, n_cls, shape)], rng.uniform(-1, 1, shape + (n_reg,))], -1)


batches = refimpl.UnrollBatches(x=rng.uniform(0, 1, (U, config.batch_size, config.layer_sizes[0])),
                                x_a=rng.uniform(0, 1, shape + (config.layer_sizes[0],)),
                                x_b=rng.uniform(0, 1, shape + (config.layer_sizes[0],)),
                                y_a=targets(), y_b=targets())
result = refimpl.meta_gradient(theta, phi, batches, config, n_cls=n_cls)
print(f"J = {result.loss:.6f} (per step: {', '.join(f'{v:.4f}' for v in result.losses)})")

direction = {k: rng.standard_normal(v.shape) for k, v in theta.items()}
eps = 1e-7       # J is very curved along theta: larger steps see the curvature (1e-5 is 10% off)
J_plus = refimpl.meta_gradient({k: v + eps * direction[k] for k, v in theta.items()}, phi, batches, config,
                               n_cls=n_cls).loss
J_minus = refimpl.meta_gradient({k: v - eps * direction[k] for k, v in theta.items()}, phi, batches, config,
                                n_cls=n_cls).loss
predicted = sum(float(np.sum(result.dtheta[k] * direction[k])) for k in theta)
print(f"directional derivative: hand VJP {predicted:.8f}, central difference {(J_plus - J_minus) / (2 * eps):.8f}")

groups = {}
for k, g in result.dtheta.items():
    group = k.split("/")[0]
    groups[group] = groups.get(group, 0.0) + float(np.sum(g ** 2))
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(list(groups), np.sqrt(list(groups.values())), color="#3a5a8c")
ax.set_ylabel("||dJ/dtheta||")
ax.set_title(f"meta-gradient by part of the rule (tiny, U = {U}; one draw of the batches, so no error bars)")
save(fig, "meta_gradient.png")

# %% [markdown]
# ## 4. Meta-training for about a minute
#
# The public trainer (`refimpl.train.run`) samples few-shot tasks from the offline
# glyph dataset (letters rendered from matplotlib's fonts), unrolls the rule on
# them and takes Adam steps on theta. This uses the `tiny` training preset with
# three changes: a constant meta learning rate 3e-3, fixed unroll and budget
# schedules, and the inner step lr_phi raised from 3e-4 to 0.1. At 3e-4 a few inner
# steps barely move phi, so J hardly depends on theta and a minute shows nothing
# (the `small` preset raises lr_phi to 1e-2 for the same reason). One minute is a
# very short meta-training: J is noisy from step to step (every step draws new
# tasks), so the curve shows its running mean; expect a fall of a few percent, and
# on another seed or a busier machine possibly less.

# %%
from refimpl.train import read_log, run, train_preset  # noqa: E402

seconds = 6 if FAST else 60
lr = 3e-3
tiny = train_preset("tiny")
tc = dataclasses.replace(tiny, model=dataclasses.replace(tiny.model, lr_phi=0.1), n_steps=100_000,
                         lr=(lr, lr, lr), lr_boundaries=(10**6, 10**6 + 1), tasks_per_step=4,
                         unroll_ramp_steps=10**6, budget_ramp_steps=10**6, checkpoint_every=10**5)
with tempfile.TemporaryDirectory() as tmp:
    started = time.monotonic()
    status = run(Path(tmp) / "run", tc, max_seconds=seconds)
    log = read_log(Path(tmp) / "run")
J = np.array([r["J"] for r in log if r["J"] is not None])
print(f"status {status}: {len(log)} meta-steps in {time.monotonic() - started:.0f} s")
window = max(1, len(J) // 10)
running = np.convolve(J, np.ones(window) / window, mode="valid")
print(f"J, running mean over {window} steps: first {running[0]:.4f}, last {running[-1]:.4f}")

# The band is one standard error of each running mean (the spread of J over its window / sqrt(window)).
running_se = np.array([J[i:i + window].std(ddof=1) / np.sqrt(window) if window > 1 else 0.0
                       for i in range(len(running))])
fig, ax = plt.subplots(figsize=(8.5, 3.5))
steps = np.arange(window - 1, len(J))
ax.plot(J, ".", ms=3, alpha=0.5, label="J per meta-step")
ax.plot(steps, running, lw=2, label=f"running mean ({window} steps)")
ax.fill_between(steps, running - running_se, running + running_se, alpha=0.3, label="± 1 s.e. of the running mean")
ax.set_xlabel("meta-step")
ax.set_ylabel("meta-objective J")
ax.set_title(f"meta-training, tiny preset (lr_phi 0.1), {seconds} s")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)     # beside the axes, never over the data
save(fig, "meta_training.png")
