"""An example port backend for ``refimpl golden verify``: five kinds written from docs/SPEC.md and
docs/golden.md alone, in plain NumPy, sharing no code with refimpl.

    .venv/bin/refimpl golden verify tests/golden --backend examples/port_backend.py:BACKEND
    .venv/bin/refimpl golden verify tests/golden --backend examples/port_backend.py:BACKEND \\
        --include matmul,gauss,soft_sqrt,batchnorm,ridge_solve --strict

The first run lists the kinds it does not implement as not implemented and passes on the
six cases it does; the second selects only its five kinds, where ``--strict`` passes too.

A backend is an object with, per kind, ``<kind>(inputs, attrs, config) -> outputs`` and
``<kind>_vjp(inputs, attrs, config, cotangents) -> grads`` (docs/golden.md section 9).
Inputs and grads are keyed by the stored input names, outputs and cotangents by the output
name without ``out/``. A real port would call its own framework here (a jax.vjp, a torch
autograd.Function) and convert to and from NumPy at this boundary.
"""
import numpy as np


class NumpyPort:
    # ---------------------------------------------------------------- matmul: y = a @ b
    def matmul(self, inputs, attrs, config):
        return {"y": inputs["a"] @ inputs["b"]}

    def matmul_vjp(self, inputs, attrs, config, cots):
        dy = cots["y"]
        return {"a": dy @ inputs["b"].T, "b": inputs["a"].T @ dy}

    # ---------------------------------------------------------------- gauss: y = exp(-x^2)
    def gauss(self, inputs, attrs, config):
        return {"y": np.exp(-inputs["x"] ** 2)}

    def gauss_vjp(self, inputs, attrs, config, cots):
        x = inputs["x"]
        return {"x": cots["y"] * (-2.0 * x * np.exp(-x ** 2))}

    # ---------------------------------------------------------------- soft_sqrt: y = sqrt(1 + x^2) - 1
    def soft_sqrt(self, inputs, attrs, config):
        x = inputs["x"]
        # x^2 / (sqrt(1 + x^2) + 1) equals sqrt(1 + x^2) - 1 without the cancellation near x = 0
        return {"y": x * x / (np.sqrt(1.0 + x * x) + 1.0)}

    def soft_sqrt_vjp(self, inputs, attrs, config, cots):
        x = inputs["x"]
        return {"x": cots["y"] * x / np.sqrt(1.0 + x * x)}

    # ---------------------------------------------------------------- batchnorm over attrs["axes"]
    @staticmethod
    def _normalised(inputs, attrs):
        m, axes = inputs["m"], tuple(attrs["axes"])
        mean = m.mean(axis=axes, keepdims=True)
        var = ((m - mean) ** 2).mean(axis=axes, keepdims=True)       # biased variance (SPEC 3)
        inv_std = 1.0 / np.sqrt(var + attrs["eps"])
        return (m - mean) * inv_std, inv_std, axes

    def batchnorm(self, inputs, attrs, config):
        xhat, _, axes = self._normalised(inputs, attrs)
        y = xhat
        if "gamma" in inputs:                 # gamma, beta: shaped like the axes not reduced
            y = y * np.expand_dims(inputs["gamma"], axes)
        if "beta" in inputs:
            y = y + np.expand_dims(inputs["beta"], axes)
        return {"y": y}

    def batchnorm_vjp(self, inputs, attrs, config, cots):
        xhat, inv_std, axes = self._normalised(inputs, attrs)
        dy = cots["y"]
        dxhat = dy * np.expand_dims(inputs["gamma"], axes) if "gamma" in inputs else dy
        dm = inv_std * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
        grads = {"m": dm}
        if "gamma" in inputs:
            grads["gamma"] = (dy * xhat).sum(axis=axes)
        if "beta" in inputs:
            grads["beta"] = dy.sum(axis=axes)
        return grads

    # ---------------------------------------------------------------- ridge_solve: C = (A^T A + r I)^-1 A^T Y
    @staticmethod
    def _system(inputs, attrs):
        A = inputs["A"]
        return A.T @ A + attrs["ridge"] * np.eye(A.shape[1], dtype=A.dtype)

    def ridge_solve(self, inputs, attrs, config):
        return {"C": np.linalg.solve(self._system(inputs, attrs), inputs["A"].T @ inputs["Y"])}

    def ridge_solve_vjp(self, inputs, attrs, config, cots):
        A, Y = inputs["A"], inputs["Y"]
        M = self._system(inputs, attrs)
        C = np.linalg.solve(M, A.T @ Y)
        G = np.linalg.solve(M, cots["C"])           # M is symmetric: M^-T dC = M^-1 dC
        return {"A": Y @ G.T - A @ (C @ G.T + G @ C.T), "Y": A @ G}


BACKEND = NumpyPort()
KINDS = ["matmul", "gauss", "soft_sqrt", "batchnorm", "ridge_solve"]

if __name__ == "__main__":
    import sys
    from pathlib import Path

    from refimpl.golden import verify

    golden_dir = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests" / "golden"
    report = verify(golden_dir, BACKEND, include=KINDS, log=print)
    sys.exit(0 if report.ok else 1)
