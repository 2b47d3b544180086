"""What trains the rule through the base model: meta_objective (SPEC 6, the few-shot ridge readout) and
unroll (SPEC 7, the truncated-BPTT meta-gradient, above meta_objective).

May import refimpl.ops, validate, config, params, refimpl.base_model and refimpl.rule.
"""
