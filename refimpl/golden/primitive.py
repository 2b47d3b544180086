"""Golden cases of the primitive operators (SPEC 10's first table): one case per registered
operator variant, kind = the operator family, at the registry's golden size."""
from __future__ import annotations

import numpy as np

from refimpl.golden.contract import CaseSpec, Evaluation, Evaluator, case_rng
from refimpl.reference.registry import GOLDEN_SIZE, all_ops, grads_dict


def evaluators() -> dict[str, Evaluator]:
    """One evaluator per operator kind (every variant of a kind shares its forward and backward)."""
    by_kind: dict[str, list] = {}
    for op in all_ops():
        by_kind.setdefault(op.kind, []).append(op)
    result = {}
    for kind, ops in by_kind.items():
        first = ops[0]
        if any(o.forward is not first.forward or o.backward is not first.backward for o in ops):
            raise RuntimeError(f"registry kind {kind!r} maps to more than one forward/backward")
        diff = tuple(dict.fromkeys(n for o in ops for n in o.diff_inputs))

        def evaluate(inputs, attrs, config, first=first, diff=diff):
            out, cache = first.forward(**inputs, **attrs)

            def vjp(cots):
                grads = grads_dict(first.backward(cots[first.output], cache))
                return {k: v for k, v in grads.items() if k in diff and k in inputs}
            return Evaluation(outputs={first.output: out}, vjp=vjp)
        result[kind] = evaluate
    return result


def cases() -> list[CaseSpec]:
    return [CaseSpec(op.name, op.kind, dict(sample.inputs), _jsonable(dict(sample.attrs)))
            for op in all_ops()
            for sample in [op.sample(case_rng(op.name), np.float64, GOLDEN_SIZE)]]


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
