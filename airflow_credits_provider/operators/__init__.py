"""Operators for credit APIs."""
