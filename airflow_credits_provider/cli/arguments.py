"""Argument types the commands share."""

from __future__ import annotations

import argparse


def positive(text: str) -> float:
    """A number more than 0."""
    number = not_negative(text)
    if number == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def not_negative(text: str) -> float:
    """A finite number of 0 or more."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, got {text!r}")
    return number
