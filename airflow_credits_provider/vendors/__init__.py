"""Vendor descriptions: base URL, auth, requests and pure parsers, one module per vendor."""
