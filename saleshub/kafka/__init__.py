"""Kafka clients of the hub: client configuration, topic set-up, and the inbound order-event consumer."""
