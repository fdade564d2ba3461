"""A rule's notifier: which Airflow ``BaseNotifier`` it names, checked up front, and built per alert.

The notifier's message fields default to the alert's text: ``subject`` and ``html_content`` for
Airflow's ``SmtpNotifier``, ``text`` for its ``SlackWebhookNotifier``, and the first of ``message``,
``text``, ``subject`` or ``title`` that any other notifier takes. A rule may set them itself, with
Jinja in the notifier's template fields: the alert is ``{{ alert }}`` (``alert.title``, ``alert.text``,
``alert.facts.free``, ``alert.link``...).
"""

from __future__ import annotations

import html
import importlib
import inspect
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import AlertRuleError

if TYPE_CHECKING:
    from airflow_credits_provider.alerts import AlertRule

#: The message fields each known notifier takes, filled from the alert (``alert.<key>``) unless the rule
#: sets them.
_MESSAGE_FIELDS: dict[str, dict[str, str]] = {
    "SmtpNotifier": {"subject": "title", "html_content": "html"},
    "SlackWebhookNotifier": {"text": "text_with_link"},
}
_GENERIC_FIELDS = {
    "message": "text_with_link",
    "text": "text_with_link",
    "subject": "title",
    "title": "title",
}


def notifier_class(rule: AlertRule) -> type:
    """The ``BaseNotifier`` subclass ``rule`` names; :class:`AlertRuleError` saying what to install or fix."""
    from airflow.providers.common.compat.notifier import BaseNotifier

    module_name, _, class_name = rule.notifier_path.rpartition(".")
    where = f"Alert rule {rule.name!r}: notifier {rule.notifier!r}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = {
            "smtp": " Install it: pip install 'airflow-credits-provider[smtp]'.",
            "slack_webhook": " Install it: pip install 'airflow-credits-provider[slack]'.",
        }.get(rule.notifier, "")
        raise AlertRuleError(f"{where} cannot be imported ({type(exc).__name__}: {exc}).{hint}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AlertRuleError(f"{where}: {module_name} has no {class_name!r}.")
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise AlertRuleError(f"{where}: {rule.notifier_path} is not an Airflow BaseNotifier subclass.")
    return cls


def check_notifier(rule: AlertRule) -> None:
    """Check that ``rule``'s notifier exists and takes its arguments, before the rule is stored."""
    cls = notifier_class(rule)
    args = {**_message_fields(cls, rule), **rule.notifier_args}
    params = inspect.signature(cls).parameters
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(rule.notifier_args) - named)
    if unknown and not (takes_any and cls.__name__ not in _MESSAGE_FIELDS):
        raise AlertRuleError(
            f"Alert rule {rule.name!r}: {cls.__name__} takes no argument {', '.join(map(repr, unknown))} "
            f"(it takes: {', '.join(sorted(named - {'context'}))})."
        )
    required = [
        n
        for n, p in params.items()
        if n != "self" and p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    missing = [n for n in required if n not in args]
    if missing:
        raise AlertRuleError(
            f"Alert rule {rule.name!r}: {cls.__name__} needs {', '.join(map(repr, missing))} in "
            "notifier_args."
        )


def send_alert(rule: AlertRule, context: dict[str, Any]) -> None:
    """Send one alert through ``rule``'s notifier; its errors propagate (the caller records them).

    The rule's own arguments are rendered with ``context`` (``{{ alert.* }}``), as Airflow renders a
    notifier's template fields; the message fields the rule leaves unset get the alert's text as it is
    (never rendered as a template: a budget's name is not Jinja).
    """
    cls = notifier_class(rule)
    defaults = _message_fields(cls, rule)
    notifier = cls(**{**{name: "" for name in defaults}, **rule.notifier_args})
    _make_connections_visible(notifier)
    notifier.render_template_fields(context)
    for name, key in defaults.items():
        setattr(notifier, name, context["alert"][key])
    notifier.notify(context)


def _make_connections_visible(notifier: Any) -> None:
    """Check the notifier's connections exist, and outside a task let its hooks find them.

    A connection that exists nowhere fails here, naming it and where it was looked for (the notifiers'
    own errors do not: "SMTP connection is not found."). A notifier's hook (``SmtpHook``,
    ``SlackWebhookHook``) looks connections up the Task SDK's way, which outside a task (``airflow-credits
    alerts test``, a script) sees the environment and secrets backends only: a connection found in the
    metadata database is exported to this process's environment, as Airflow's connection-test endpoint
    does.
    """
    from airflow_credits_provider.hooks.connections import load_connection

    for name, conn_id in sorted(vars(notifier).items()):
        if name.endswith("conn_id") and isinstance(conn_id, str) and conn_id:
            load_connection(conn_id)


def alert_context(alert: dict[str, Any], link: str | None) -> dict[str, Any]:
    """The template context a notifier renders: ``{{ alert.* }}``, with HTML and link variants."""
    text = str(alert["text"])
    linked = f"{text}\n{link}" if link else text
    body = f"<p>{html.escape(text)}</p>"
    if link:
        body += f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p>'

    # No DAG: an alert is about an account or a budget (Airflow 3.0's notifiers read context["dag"]).
    return {"dag": None, "alert": {**alert, "link": link, "html": body, "text_with_link": linked}}


def _message_fields(cls: type, rule: AlertRule) -> dict[str, str]:
    if cls.__name__ in _MESSAGE_FIELDS:
        return dict(_MESSAGE_FIELDS[cls.__name__])
    params = inspect.signature(cls).parameters
    for name, key in _GENERIC_FIELDS.items():
        if name in params and name not in rule.notifier_args:
            return {name: key}
    return {}
