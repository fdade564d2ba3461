"""``python -m airflow_credits_provider.cli``: the ``airflow-credits`` command."""

from __future__ import annotations

import sys

from airflow_credits_provider.cli.console import main

sys.exit(main())
