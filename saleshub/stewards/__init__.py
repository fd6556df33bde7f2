"""Stewards: golden samples, impact of a mapping edit, previews and field lineage, for the people who own
the mappings."""
