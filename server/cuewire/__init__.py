"""Cuewire: real-time behavioural triggers for websites."""

__version__ = "0.1.0"
