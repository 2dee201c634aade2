"""Interaction-model backends: in-process transformers, OpenAI-compatible HTTP, scripted."""
