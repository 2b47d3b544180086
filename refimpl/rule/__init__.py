"""The update rule (SPEC 4-5): its stages, each a forward with a hand-composed backward."""
