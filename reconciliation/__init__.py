"""Reconciliation: what each source says against what the hub holds, across systems and channels.

Reads the hub only through the store's read API (``saleshub.store.queries``).
"""
