"""The runtime commands of ``saleshub``: serve, status, db, events, orders (the mapping commands are
in ``saleshub.cli``, which registers these)."""
