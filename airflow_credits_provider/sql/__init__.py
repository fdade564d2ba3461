"""The SQL layer that landing, reservations, budgets, the runway and the Credits pages share.

- :mod:`.tables`: table definitions and portable DDL/upserts on PostgreSQL, MySQL/MariaDB and SQLite
  (exact decimals, binary-collated keys, naive UTC timestamps), through any common-sql ``DbApiHook``;
- :mod:`.copy_upsert`: PostgreSQL's ``COPY`` into a temporary table, then one upsert;
- :mod:`.connections`: a SQL connection id to its hook, and table names checked before any I/O;
- :mod:`.landing`: the landing tables (transactions with their cursor, balance snapshots).
"""
