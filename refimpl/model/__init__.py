"""The base model and what trains the rule through it: base_model (the MLP), meta_objective, unroll.

May import refimpl.ops, validate, config, params; meta_objective and unroll also refimpl.rule.
"""
