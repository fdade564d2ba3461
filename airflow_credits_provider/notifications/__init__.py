"""Alerts told to people through Airflow's notifiers (``BaseNotifier``: SMTP, Slack and any other).

- :mod:`.notifiers`: a rule's notifier, checked when the rule is defined (its class, its arguments) and
  built for one alert, with the message in the fields it sends;
- :mod:`.delivery`: sending claimed alerts exactly once: lease, send, mark sent or failed (retried with
  backoff, never dropped).
"""
