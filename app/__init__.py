"""Tact: real-time suppression of notifications that no longer make sense."""

__version__ = "0.1.0"
