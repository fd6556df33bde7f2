"""Ingestion: the pipeline every transport feeds, and the transports (webhooks)."""
