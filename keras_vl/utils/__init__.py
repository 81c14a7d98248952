"""Utilities: text rendering, checkpoint reading."""

__all__ = []
