"""Text-to-speech backends and the fallback chain.

``base`` holds the interface; ``edge`` (online), ``piper`` (offline neural) and
``espeak`` (offline, last resort) implement it; ``fallback.FallbackTTS`` chains
them. Which backends make up the chain is decided in ``server.app`` from config names.
"""
