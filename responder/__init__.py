"""responder: rules-driven auto-responder and IVR bot for TextIt and Hoiio webhooks."""

from __future__ import annotations

__version__ = "0.1.0"
