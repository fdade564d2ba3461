"""How the provider talks to a vendor's API: the HTTP client and the ledger's paging.

- :mod:`.transport`: :class:`~.transport.CreditApiClient`, one httpx client for every vendor (sync and
  async): auth, errors mapped to :mod:`airflow_credits_provider.errors`, bounded retries, redaction;
- :mod:`.pacing`: :class:`~.pacing.Throttle`, how many requests of one job are in flight and how fast
  they start (429s slow it down);
- :mod:`.ledger`: :class:`~.ledger.OffsetPaginator`, the one rule that decides when a ledger is
  exhausted, and the :class:`~.ledger.LedgerHook` protocol;
- :mod:`.concurrent_paging`: a ledger's pages fetched several at a time, exactly.

Used by the hooks (:mod:`airflow_credits_provider.hooks`) and the landing transfers; it knows vendors only
through their descriptions (:mod:`airflow_credits_provider.vendors`) and nothing of Airflow.
"""
