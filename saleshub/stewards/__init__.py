"""Stewards: golden samples, impact of a mapping edit and previews, for the people who own the mappings."""
