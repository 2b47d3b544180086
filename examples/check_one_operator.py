"""Run one operator forward and backward, and compare its gradient with autograd's.

    .venv/bin/python examples/check_one_operator.py batchnorm_theta
"""
import sys

import numpy as np

from refimpl.reference.gradcheck import check_op
from refimpl.reference.registry import Size, get_op

name = sys.argv[1] if len(sys.argv) > 1 else "batchnorm_theta"
op = get_op(name)
rng = np.random.default_rng(0)
sample = op.sample(rng, np.float64, Size())
out, cache = op.run(sample)
print(f"{op.name}: inputs {[(k, v.shape) for k, v in sample.inputs.items()]}, attrs {sample.attrs}")
print(f"output shape {np.shape(out)}")
forward_error, grad_errors = check_op(op, sample, rng)
print(f"forward vs transcription: {forward_error:.1e}")
for k, err in grad_errors.items():
    print(f"grad {k} vs autograd: {err:.1e}")
