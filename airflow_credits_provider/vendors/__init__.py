"""Vendor descriptions: base URL, auth, requests and pure parsers, one module per vendor."""

from __future__ import annotations


def display_name(key: str) -> str:
    """The display name of the vendor behind ``CreditBalance.vendor``.

    Covers the named vendors, the generic presets and their pools (``"findymail:verifier"``); any
    other key (a described in-house API) is returned as it is.
    """
    from airflow_credits_provider.vendors.generic import PRESETS
    from airflow_credits_provider.vendors.leadmagic import LeadMagicVendor
    from airflow_credits_provider.vendors.localleads import LocalLeadsVendor
    from airflow_credits_provider.vendors.truemail import TrueMailVendor

    names = {v.key: v.display_name for v in (LeadMagicVendor, LocalLeadsVendor, TrueMailVendor)}
    names.update({key: spec.name for key, spec in PRESETS.items()})
    base, _, pool = key.partition(":")
    name = names.get(base, base)
    return f"{name} ({pool})" if pool else name
