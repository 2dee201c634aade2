"""Delegation: background agents (OpenAI-compatible chat, command line, webhook) and
the manager that runs them beside a session. See DESIGN.md section 6.

Backends take their own arguments and never see ``server.config``: ``server.app``
picks one by ``[agent] backend`` and passes it what it needs."""
