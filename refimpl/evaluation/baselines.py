"""Feature extractors a learned rule is compared with (the paper's Fig. 5 left and its appendix).

Every baseline is fitted on one task and returns a ``transform(x) -> F [n, F]``
whose features go through the same ridge readout as everything else
(:func:`refimpl.evaluation.fewshot.readout_accuracy`, SPEC 6). The base model's
features are computed with the batch statistics of the batch they are asked
for (as in the readout of phi); the VAE and the supervised network do the
same with their batch norms.

- :func:`init_features`: the untrained random base model phi_0;
- :func:`raw_features`: the inputs themselves;
- :func:`ink_features_fn`: one feature, the mean input;
- :func:`pca_features`: scikit-learn PCA to N^L components, fitted on the
  unlabeled train split;
- :func:`train_vae`: a VAE on the unlabeled train split as the paper
  describes it (hidden layers with batch norm and ReLU, a projection to the
  mean and log standard deviation of the latent, a decoder mirroring the
  encoder, Adam at 1e-4), at the paper's sizes (:data:`PAPER_VAE`: 3 x 128,
  latent 32, or N^L when the evaluation net's top is narrower), trained
  until the loss on a validation split of the unlabeled data stops falling
  (early stopping with a patience and a step cap). The
  likelihood is a Gaussian with a per-pixel mean and log standard deviation
  (the paper's "quantized normal" without the quantisation, decision).
  Features are the posterior means. Gradients from autograd.
- :func:`train_supervised`: the base MLP plus a softmax layer trained with
  cross-entropy on only the K-shot labeled examples (Adam; its steps and
  learning rate chosen on held-out glyph tasks, see
  ``examples/transfer/tune_supervised.py``); features are its top layer x^L.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from refimpl.evaluation.diagnostics import ink_features


# ---------------------------------------------------------------------------------
# fixed extractors
# ---------------------------------------------------------------------------------
def init_features(phi, config) -> Callable:
    """The random base model ``phi`` (config ``config``): ``x -> x^L``."""
    from refimpl.base_model.mlp import base_forward

    def transform(x):
        return base_forward(phi, np.asarray(x, dtype=next(iter(phi.values())).dtype), config)[0][-1]
    return transform


def raw_features() -> Callable:
    """The raw inputs."""
    return lambda x: np.asarray(x)


def ink_features_fn() -> Callable:
    """One feature: the mean input."""
    return ink_features


def pca_features(x_train, n_components: int, seed: int = 0) -> Callable:
    """scikit-learn PCA fitted on ``x_train [n, N0]``; ``transform`` projects onto its components."""
    from sklearn.decomposition import PCA

    x_train = np.asarray(x_train, dtype=np.float64)
    n_components = min(int(n_components), x_train.shape[0], x_train.shape[1])
    pca = PCA(n_components=n_components, random_state=seed).fit(x_train)
    return lambda x: pca.transform(np.asarray(x, dtype=np.float64))


# ---------------------------------------------------------------------------------
# autograd networks
# ---------------------------------------------------------------------------------
def _bn(a, eps=1e-5):
    import autograd.numpy as anp
    mean = anp.mean(a, axis=0, keepdims=True)
    var = anp.mean((a - mean) ** 2, axis=0, keepdims=True)
    return (a - mean) / anp.sqrt(var + eps)


def _dense_init(rng, sizes, scale=None):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        std = np.sqrt(2.0 / n_in) if scale is None else scale
        layers.append((rng.standard_normal((n_in, n_out)) * std, np.zeros(n_out)))
    return layers


def _mlp(layers, x):
    """Hidden layers: dense -> batch norm -> ReLU (a bias after the batch norm, as in the base model)."""
    import autograd.numpy as anp
    h = x
    for W, b in layers:
        h = anp.maximum(_bn(h @ W) + b, 0.0)
    return h


class FitResult(NamedTuple):
    transform: Callable     # x -> features
    losses: list            # training loss per step
    params: object          # the trained parameters (a pytree)


class AdamStepper:
    """The meta-trainer's Adam (:func:`refimpl.train.optim.adam_step`) on a flattened pytree, one step at a
    time: ``params = opt.step(flat_gradient)``."""

    def __init__(self, params, lr):
        from autograd.misc.flatten import flatten

        from refimpl.train.optim import adam_init

        flat, self.unflatten = flatten(params)
        self.x = {"params": flat.copy()}
        self.state = adam_init(self.x)
        self.lr = lr

    def step(self, grad_flat):
        from refimpl.train.optim import adam_step

        self.x, self.state = adam_step(self.x, {"params": grad_flat}, self.state, self.lr)
        return self.unflatten(self.x["params"])


def _adam_fit(loss_fn, params, lr, n_steps, batch_fn):
    """Minimise ``loss_fn(params, batch)`` (params: a pytree of float64 arrays) with Adam on batches from
    ``batch_fn(step)``; the Adam is the meta-trainer's (:func:`refimpl.train.optim.adam_step`), on the
    flattened parameters, with its default betas and eps."""
    from autograd import grad
    from autograd.misc.flatten import flatten

    from refimpl.train.optim import adam_init, adam_step

    flat, unflatten = flatten(params)
    x = {"params": flat.copy()}
    state = adam_init(x)
    g = grad(loss_fn)
    losses = []
    for step in range(n_steps):
        batch = batch_fn(step)
        losses.append(float(loss_fn(params, batch)))
        gflat, _ = flatten(g(params, batch))
        x, state = adam_step(x, {"params": gflat}, state, lr)
        params = unflatten(x["params"])
    return params, losses


# ---------------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------------
LOG_2PI = float(np.log(2 * np.pi))


def vae_init(rng, n_in: int, hidden, latent: int):
    """Encoder hidden layers, encoder head [h, 2*latent], decoder hidden layers (mirrored), decoder
    head [h, 2*n_in] (pixel means and log standard deviations)."""
    hidden = tuple(hidden)
    enc = _dense_init(rng, (n_in, *hidden))
    enc_head = _dense_init(rng, (hidden[-1], 2 * latent), scale=0.01)[0]
    dec = _dense_init(rng, (latent, *hidden[::-1]))
    dec_head = _dense_init(rng, (hidden[0], 2 * n_in), scale=0.01)[0]
    return [enc, enc_head, dec, dec_head]


def vae_loss(params, batch):
    """Negative ELBO per example: Gaussian likelihood of x, KL of N(mu, sigma) to N(0, I)."""
    import autograd.numpy as anp
    x, eps = batch
    enc, (We, be), dec, (Wd, bd) = params
    stats = _mlp(enc, x) @ We + be
    latent = stats.shape[1] // 2
    mu, log_sd = stats[:, :latent], anp.clip(stats[:, latent:], -6.0, 3.0)
    z = mu + anp.exp(log_sd) * eps
    out = _mlp(dec, z) @ Wd + bd
    n_in = x.shape[1]
    x_mu, x_log_sd = out[:, :n_in], anp.clip(out[:, n_in:], -5.0, 2.0)
    nll = 0.5 * anp.sum(((x - x_mu) / anp.exp(x_log_sd)) ** 2 + 2 * x_log_sd + LOG_2PI, axis=1)
    kl = 0.5 * anp.sum(mu ** 2 + anp.exp(2 * log_sd) - 2 * log_sd - 1, axis=1)
    return anp.mean(nll + kl)


#: The paper's VAE (appendix): 3 hidden layers of 128 with batch norm, a 32-d latent, Adam 1e-4.
PAPER_VAE = {"hidden": (128, 128, 128), "latent": 32, "lr": 1e-4}


class VAEFit(NamedTuple):
    transform: Callable     # x -> posterior means
    losses: list            # training loss (negative ELBO) per step
    params: object          # the parameters kept (the best validation loss, or the last)
    valid: list             # [(step, validation loss)] at every check ([] without a validation set)
    best_step: int          # the step whose parameters were kept
    stopped_at: int         # steps taken


def train_vae(x_train, hidden, latent: int, rng, *, n_steps: int = 2000, batch_size: int = 128,
              lr: float = 1e-4, x_valid=None, eval_every: int = 250, patience: int | None = None) -> VAEFit:
    """A VAE on ``x_train [n, N0]``; ``transform(x)`` is the posterior mean ``[n, latent]``.

    With ``x_valid`` the negative ELBO on it (with noise fixed once, so the checks differ only in
    the parameters) is measured at step 0 and every ``eval_every`` steps; with ``patience`` the fit
    stops after that many checks in a row without a new best, and keeps the best parameters.
    ``n_steps`` is the cap."""
    from autograd import grad
    from autograd.misc.flatten import flatten

    x_train = np.asarray(x_train, dtype=np.float64)
    params = vae_init(rng, x_train.shape[1], hidden, latent)
    if x_valid is not None:
        x_valid = np.asarray(x_valid, dtype=np.float64)
        valid_batch = (x_valid, np.random.default_rng(0).standard_normal((len(x_valid), latent)))
    opt = AdamStepper(params, lr)
    g = grad(vae_loss)
    losses, valid = [], []
    best, best_loss, best_step, since = params, np.inf, 0, 0
    step = 0
    while True:
        if x_valid is not None and step % eval_every == 0:
            loss = float(vae_loss(params, valid_batch))
            valid.append((step, loss))
            if loss < best_loss:
                best, best_loss, best_step, since = params, loss, step, 0
            else:
                since += 1
            if patience is not None and since >= patience:
                break
        if step >= n_steps:
            break
        idx = rng.integers(len(x_train), size=batch_size)
        batch = (x_train[idx], rng.standard_normal((batch_size, latent)))
        losses.append(float(vae_loss(params, batch)))
        gflat, _ = flatten(g(params, batch))
        params = opt.step(gflat)
        step += 1
    if x_valid is None:
        best, best_step = params, step
    kept = best

    def transform(x):
        enc, (We, be) = kept[0], kept[1]
        return np.asarray(_mlp(enc, np.asarray(x, np.float64)) @ We + be)[:, :latent]
    return VAEFit(transform, losses, kept, valid, best_step, step)


# ---------------------------------------------------------------------------------
# supervised
# ---------------------------------------------------------------------------------
def supervised_init(rng, layer_sizes, n_classes: int):
    """The base MLP (every layer dense -> batch norm -> ReLU, as SPEC 2) and a softmax layer."""
    return [_dense_init(rng, tuple(layer_sizes)), _dense_init(rng, (layer_sizes[-1], n_classes))[0]]


def supervised_logits(params, x):
    body, (Wh, bh) = params
    return _mlp(body, x) @ Wh + bh


def supervised_loss(params, batch):
    """Mean cross-entropy of the softmax layer against integer labels."""
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp
    x, labels = batch
    logits = supervised_logits(params, x)
    picked = anp.sum(logits * np.eye(logits.shape[1])[labels], axis=1)
    return anp.mean(logsumexp(logits, axis=1) - picked)


def train_supervised(x_labeled, labels, layer_sizes, n_classes: int, rng, *, n_steps: int = 500,
                     lr: float = 3e-3) -> FitResult:
    """The base MLP with ``layer_sizes`` + softmax on the labeled set only (full batch, Adam).
    ``transform(x)`` is the top hidden layer x^L (batch statistics of ``x``)."""
    x_labeled = np.asarray(x_labeled, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    params = supervised_init(rng, layer_sizes, n_classes)
    params, losses = _adam_fit(supervised_loss, params, lr, n_steps, lambda step: (x_labeled, labels))

    def transform(x):
        return np.asarray(_mlp(params[0], np.asarray(x, np.float64)))
    return FitResult(transform, losses, params)


def supervised_accuracy(result: FitResult, x, labels) -> float:
    """Accuracy of the trained softmax head itself on ``(x, labels)``."""
    logits = np.asarray(supervised_logits(result.params, np.asarray(x, np.float64)))
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))
