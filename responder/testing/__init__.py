"""Helpers for testing rules and deployments: fake provider APIs on real sockets."""
