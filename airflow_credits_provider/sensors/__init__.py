"""Sensors for credit APIs."""
