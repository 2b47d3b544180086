"""refimpl: reference implementation of Metz et al. (ICLR 2019), plain NumPy."""
__version__ = "0.1.0"
