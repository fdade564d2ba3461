"""The command lines: ``airflow-credits`` (the console script) and ``airflow credits`` (Airflow's CLI).

- :mod:`.console`: the ``airflow-credits`` entry point: its parser and the one place Airflow's start-up
  output is quieted (:mod:`.quiet`);
- one module per command group: :mod:`.balances` (``balance``, ``runway``), :mod:`.budgets`,
  :mod:`.sandbox`;
- :mod:`.groups`: a group's sub-commands declared once, for argparse and for Airflow's CLI;
- :mod:`.airflow_commands`: the provider info's ``cli`` entry, the same groups as ``airflow credits ...``
  on Airflow 3.2 and later;
- :mod:`.connections` and :mod:`.reservation_db`: how every command finds its connections and the
  reservation database (``[credits]`` settings, then the metadata database).
"""

from __future__ import annotations

from airflow_credits_provider.cli.console import main

__all__ = ["main"]
