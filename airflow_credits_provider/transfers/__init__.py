"""Transfers: land credit history into any common-sql database."""
