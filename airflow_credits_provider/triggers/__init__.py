"""Async triggers for deferrable credit sensors."""
