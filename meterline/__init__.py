"""Meterline: usage-based billing engine (composition root)."""

__version__ = "0.1.0"
