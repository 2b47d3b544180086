"""Hypothesis strategies shared by the tests."""
from hypothesis import strategies as st

from refimpl.reference.registry import Size


@st.composite
def sizes(draw):
    """Small sizes with the edge cases: batch 1 and 2, one unit, kernel 1, rank 1."""
    return Size(
        B=draw(st.integers(1, 6)),
        N=draw(st.integers(1, 5)),
        Nout=draw(st.integers(1, 4)),
        C=draw(st.integers(1, 4)),
        Cout=draw(st.integers(1, 3)),
        K=draw(st.sampled_from([1, 3, 5])),
        R=draw(st.integers(1, 3)),
    )
