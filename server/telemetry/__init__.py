"""Logging, metrics and per-stage timing. Logs never carry images, audio or transcripts."""
