"""Dialogues: multi-step IVR and SMS conversations as YAML state machines."""
