"""Text-to-speech backends and the fallback chain.

``base`` holds the interface; ``edge`` (online), ``piper`` (offline neural) and
``espeak`` (offline, last resort) implement it; ``fallback.FallbackTTS`` chains
them; ``registry.TTS_BACKENDS`` maps config names to constructors for ``server.app``.
"""
