"""Hooks for vendor credit APIs, one module per vendor."""
