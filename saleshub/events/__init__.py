"""Outbound canonical events: Avro writer schemas, wire framing, the transactional outbox and its relay."""
