"""Receive: the transports that take events in (webhooks, the Kafka consumer, replay) and record them."""
