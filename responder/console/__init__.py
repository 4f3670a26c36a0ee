"""The web console: conversations, webhooks, the outbox, the rules and a simulator, in the
browser, served by ``responder serve`` under ``/console/`` when a console token is set.

A layer of its own above ``tools``: it shows what ``graph``, ``explain`` and ``outbox`` compute
and plays the simulator on the transcript harness, so it sits above them, and ``cli`` mounts
it on the application ``web.server`` builds (which knows nothing of it).
"""
