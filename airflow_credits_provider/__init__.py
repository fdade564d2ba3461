"""Apache Airflow provider for vendor credit APIs: check balances before a DAG spends credits."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
