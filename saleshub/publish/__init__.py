"""Publish: canonical event encoding, the transactional outbox rows and the Kafka relay."""
