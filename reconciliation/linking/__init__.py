"""One customer across systems and channels: normalised records, a Splink model, incremental linking."""

from reconciliation.linking.run import LinkingResult, link_customers

__all__ = ["LinkingResult", "link_customers"]
