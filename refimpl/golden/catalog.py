"""What this version of refimpl exports: every case and the evaluator of every kind."""
from __future__ import annotations

import functools

from refimpl.golden import composed, primitive
from refimpl.golden.contract import CaseSpec, Evaluation, Evaluator, GoldenError


@functools.cache
def evaluators() -> dict[str, Evaluator]:
    return {**primitive.evaluators(), **composed.EVALUATORS}


def kinds() -> list[str]:
    """Every case kind, sorted."""
    return sorted(evaluators())


def all_cases() -> list[CaseSpec]:
    cases = primitive.cases() + composed.cases()
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise RuntimeError("duplicate golden case names")
    return cases


@functools.cache
def case_kinds() -> dict[str, str]:
    """Case name -> kind, for every case this version exports."""
    return {c.name: c.kind for c in all_cases()}


def check_kinds(selected) -> None:
    unknown = sorted(set(selected) - set(kinds()))
    if unknown:
        raise GoldenError(f"unknown kind(s) {', '.join(unknown)} (valid: {', '.join(kinds())})")


def evaluate(kind: str, inputs: dict, attrs: dict, config, cotangents: dict) -> tuple[Evaluation, dict]:
    """The case's outputs and, for ``cotangents``, its grads."""
    evaluation = evaluators()[kind](inputs, attrs, config)
    return evaluation, evaluation.vjp(cotangents)
