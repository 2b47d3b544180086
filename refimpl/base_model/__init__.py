"""The base model (SPEC 2): the MLP phi the rule trains, its forward and hand VJP (:mod:`.mlp`).

May import refimpl.ops, validate, config and params; the rule and everything above it import this.
"""
