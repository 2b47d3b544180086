"""The oracles (plain autograd transcriptions of the SPEC formulas, one per operator and composed stage),
the operator registry pairing them with refimpl.ops, and the checks built on it (gradcheck, ops_report).

May import refimpl.ops, validate, config and params; never model or rule (the oracle stays independent).
"""
