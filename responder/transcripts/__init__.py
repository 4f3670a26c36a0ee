"""Transcript tests: YAML conversations run against the rules (``responder test``)."""
