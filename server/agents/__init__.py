"""Delegation: background agents (OpenAI-compatible chat, command line, webhook) and
the manager that runs them beside a session. See DESIGN.md section 6."""
