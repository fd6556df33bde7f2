"""The hub runtime: mapping engine, command line and (later) store, ingestion and publishing."""
