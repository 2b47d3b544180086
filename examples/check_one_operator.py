"""Run one operator forward and backward, and compare its gradient with autograd's.

    .venv/bin/python examples/check_one_operator.py batchnorm_theta
"""
import numpy as np

from refimpl.cli import OneLineParser
from refimpl.reference.gradcheck import check_op
from refimpl.reference.registry import Size, all_ops, get_op

names = [op.name for op in all_ops()]
parser = OneLineParser(description="Run one registered operator forward and backward on a random sample "
                                   "and compare its gradients with autograd's.")
parser.add_argument("operator", nargs="?", default="batchnorm_theta", choices=names, metavar="OPERATOR",
                    help=f"a registered operator (default batchnorm_theta): {', '.join(names)}")
args = parser.parse_args()

op = get_op(args.operator)
rng = np.random.default_rng(0)
sample = op.sample(rng, np.float64, Size())
out, cache = op.run(sample)
print(f"{op.name}: inputs {[(k, v.shape) for k, v in sample.inputs.items()]}, attrs {sample.attrs}")
print(f"output shape {np.shape(out)}")
forward_error, grad_errors = check_op(op, sample, rng)
print(f"forward vs transcription: {forward_error:.1e}")
for k, err in grad_errors.items():
    print(f"grad {k} vs autograd: {err:.1e}")
