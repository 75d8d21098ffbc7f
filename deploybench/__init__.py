"""deploybench: export vision models, run them in their native runtimes, check parity, measure."""

__version__ = "0.1.0"
