"""Outbound API clients and the delivery worker that drains the outbox."""
