"""Vendor descriptions, one module per vendor, and the registry every other part derives from.

Each module in this package describes one credit API as a :class:`~.base.CreditVendor` subclass with a
``key``. Defining the class registers it; :func:`registered_vendors` imports every module here once, so a
new vendor module is found without being listed anywhere. Provider info (connection types, forms, hook
class names), hook resolution, display names in messages and the CLI all read this registry.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_credits_provider.vendors.base import CreditVendor


@functools.cache
def registered_vendors() -> dict[str, type[CreditVendor]]:
    """Every described vendor by key (its connection type): the named vendors, then the generic one."""
    import importlib
    import pkgutil

    from airflow_credits_provider.vendors.base import CreditVendor

    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module != "base":
            importlib.import_module(f"{__name__}.{module}")
    return dict(sorted(CreditVendor.registry.items(), key=lambda item: (item[1].generic, item[0])))


def vendor_class(key: str) -> type[CreditVendor]:
    """The description of the vendor whose key (connection type) is ``key``.

    :raises KeyError: no vendor has that key
    """
    return registered_vendors()[key]


def display_name(key: str) -> str:
    """The display name behind a vendor key (``CreditBalance.vendor``, a table's ``vendor`` column).

    Covers the described vendors, the generic presets and their pools (``"findymail:verifier"`` is
    "Findymail (verifier)"); any other key (an in-house API described in a connection) is returned as is.
    """
    base, _, pool = key.partition(":")
    for vendor in registered_vendors().values():
        name = vendor.name_for(base)
        if name is not None:
            return f"{name} ({pool})" if pool else name
    return key
