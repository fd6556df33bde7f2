"""Process: map recorded events into canonical orders and store them with their outbox events."""
