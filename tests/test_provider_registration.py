"""Airflow discovers the provider, its hooks, connection types and connection forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import jsonschema
import pytest

from airflow_credits_provider.get_provider_info import get_provider_info
from airflow_credits_provider.sandbox import SandboxServer  # noqa: TC001 - fixture annotation

CONN_TYPES = {
    "leadmagic": "LeadMagicHook",
    "localleads": "LocalLeadsHook",
    "truemail": "TrueMailHook",
    "credit_api": "GenericCreditHook",
}


def test_entry_point_and_package_name() -> None:
    dist = distribution("airflow-credits-provider")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert entry_point.value == "airflow_credits_provider.get_provider_info:get_provider_info"
    assert entry_point.load()()["package-name"] == dist.metadata["Name"] == "airflow-credits-provider"
    assert Path(__file__).parent.parent.joinpath("airflow_credits_provider", "py.typed").exists()


def test_provider_info_matches_airflows_schema() -> None:
    import airflow

    schema = json.loads(Path(airflow.__file__).with_name("provider_info.schema.json").read_text())
    problems = [
        error.message for error in jsonschema.Draft7Validator(schema).iter_errors(get_provider_info())
    ]
    assert problems == []


def _declarative_forms() -> bool:
    """Whether this Airflow reads connection forms from provider info (3.2+) rather than hook methods."""
    from airflow import __version__
    from packaging.version import Version

    return Version(__version__) >= Version("3.2")


DECLARATIVE_FORMS = _declarative_forms()


def test_connection_forms_are_declarative() -> None:
    info = get_provider_info()
    forms = {c["connection-type"]: c for c in info["connection-types"]}
    assert set(forms) == set(CONN_TYPES)
    for conn_type, cls in CONN_TYPES.items():
        form = forms[conn_type]
        assert form["hook-class-name"].endswith(f".{cls}")
        behaviour = form["ui-field-behaviour"]
        assert behaviour["relabeling"]["password"] == "API key"
        assert behaviour["placeholders"]["host"].startswith("https://")
        tuning = {"timeout", "max_retries", "max_retry_wait"}
        if conn_type == "credit_api":  # described in the form; advanced settings in the visible extra
            assert set(behaviour["hidden-fields"]) == {"schema", "login", "port"}
            assert set(form["conn-fields"]) == tuning | {
                "preset",
                "path",
                "auth",
                "auth_name",
                "available_path",
                "pool",
            }
            preset = form["conn-fields"]["preset"]["schema"]
            assert None not in preset["enum"]  # Airflow's form would show "null" as a choice
            assert preset["values_display"]["millionverifier"] == "MillionVerifier"
            assert set(preset["enum"]) == set(preset["values_display"]) >= {"zerobounce", "hunter"}
            assert None not in form["conn-fields"]["auth"]["schema"]["enum"]
        else:
            assert set(behaviour["hidden-fields"]) == {"schema", "login", "port", "extra"}
            assert set(form["conn-fields"]) == tuning


def test_classmethod_fallback_for_airflow_3_0_and_3_1() -> None:
    from airflow_credits_provider.hooks.generic import GenericCreditHook
    from airflow_credits_provider.hooks.leadmagic import LeadMagicHook
    from airflow_credits_provider.hooks.localleads import LocalLeadsHook
    from airflow_credits_provider.hooks.truemail import TrueMailHook

    assert "get_ui_field_behaviour" in GenericCreditHook.__dict__
    for hook_class, url in (
        (LeadMagicHook, "https://api.leadmagic.io"),
        (LocalLeadsHook, "https://leadsapi.postorbit.io"),
        (TrueMailHook, "https://api.truemail.app"),
    ):
        assert "get_ui_field_behaviour" in hook_class.__dict__  # 3.0/3.1 look only here
        behaviour = hook_class.get_ui_field_behaviour()
        assert behaviour["relabeling"] == {"password": "API key", "host": "Base URL (optional)"}
        assert behaviour["placeholders"]["host"] == url
        assert "extra" in behaviour["hidden_fields"]


def test_providers_manager_discovers_everything() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-credits-provider" in manager.providers
    try:  # Airflow 3.2+: task-side hooks come from the Task SDK's own manager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    except ImportError:  # Airflow 3.0, 3.1
        hooks = manager.hooks
    for conn_type, cls in CONN_TYPES.items():
        hook = hooks[conn_type]
        assert hook is not None
        assert hook.hook_class_name.endswith(cls)
        assert hook.connection_id_attribute_name == "credit_conn_id"
        if DECLARATIVE_FORMS:
            behaviour = manager.field_behaviours[conn_type]
            assert behaviour["relabeling"]["password"] == "API key"
            widget = manager.connection_form_widgets[f"extra__{conn_type}__timeout"]
            assert widget.field["schema"]["type"] == ["number", "null"]
        else:  # from get_ui_field_behaviour: 3.0/3.1 read it only with wtforms, a dependency
            behaviour = manager.field_behaviours[conn_type]
            assert behaviour["relabeling"]["password"] == "API key"
            assert ("extra" in behaviour["hidden_fields"]) is (conn_type != "credit_api")


def test_airflow_cli_lists_the_provider_and_hooks() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
    providers = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=True,
    )
    names = [p["package_name"] for p in json.loads(providers.stdout.splitlines()[-1])]
    assert "airflow-credits-provider" in names
    hooks = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=True,
    )
    by_type = {h["connection_type"]: h for h in json.loads(hooks.stdout.splitlines()[-1])}
    for conn_type, cls in CONN_TYPES.items():
        assert by_type[conn_type]["class"].endswith(cls)


def _test_like_the_api_server(
    conn_type: str, host: str, password: str, extra: dict[str, object]
) -> tuple[bool, str]:
    """Replay POST /api/v2/connections/test: a transient conn id exported as a URI, then test_connection()."""
    from airflow.models.connection import Connection

    transient = "transient_test_conn"
    conn = Connection(
        conn_id=transient, conn_type=conn_type, host=host, password=password, extra=json.dumps(extra)
    )
    os.environ[f"AIRFLOW_CONN_{transient.upper()}"] = conn.get_uri()
    try:
        return conn.test_connection()  # type: ignore[no-any-return]
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{transient.upper()}", None)


# Airflow's own Connection.get_hook() uses an accessor it has deprecated; not ours to fix.
@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
@pytest.mark.parametrize("conn_type", list(CONN_TYPES))
def test_test_button_path(connections: SandboxServer, conn_type: str) -> None:
    if conn_type == "credit_api":
        conn_json = connections.connection("zerobounce")
    else:
        conn_json = json.loads(os.environ[f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT"])
    ok, message = _test_like_the_api_server(
        conn_type, conn_json["host"], conn_json["password"], conn_json["extra"]
    )
    assert ok is True, message
    assert message.endswith("credits available")
    assert "transient_test_conn" not in message  # Airflow's temporary id means nothing to the user
    ok, message = _test_like_the_api_server(conn_type, conn_json["host"], "wrong-key-123", conn_json["extra"])
    assert ok is False
    assert "rejected the API key" in message
    assert "wrong-key-123" not in message
    assert "transient_test_conn" not in message


def test_airflow_loads_the_credits_plugin_from_its_entry_point() -> None:
    """With Airflow's defaults (lazy provider discovery), the plugin loads through ``airflow.plugins``."""
    from importlib.metadata import entry_points, version

    [entry] = [e for e in entry_points(group="airflow.plugins") if e.name == "credits"]
    assert entry.value == "airflow_credits_provider.ui.plugin:CreditsPlugin"
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
    env.pop("AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS", None)
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=True,
    )
    [plugin] = [p for p in json.loads(listed.stdout.splitlines()[-1]) if p["name"] == "credits"]
    [app] = plugin["fastapi_apps"]
    assert (app["url_prefix"], app["name"], app["app"]) == (
        "/credits",
        "Credits",
        "airflow_credits_provider.ui.plugin.LazyCreditsApp",
    )
    major, minor = (int(p) for p in version("apache-airflow").split(".")[:2])
    if (major, minor) >= (3, 1):  # external views arrived in Airflow 3.1
        views = {v["destination"]: v for v in plugin["external_views"]}
        assert set(views) == {"nav", "dag_run", "task_instance"}
        for view in views.values():
            assert not view["href"].startswith("/")  # relative: a base_url sub-path works
        assert views["task_instance"]["href"].endswith("task_id={TASK_ID}&map_index={MAP_INDEX}")
