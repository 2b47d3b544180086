"""The update rule (SPEC 4-5): conv_block, topd, compute_h, error_prop, weight_update and
update_step, each stage a forward with a hand-composed backward.

May import refimpl.ops, validate, config, params and refimpl.base_model.mlp.
"""
