"""flashalpha: self-hosted, streaming options analytics."""

__version__ = "0.1.0"
