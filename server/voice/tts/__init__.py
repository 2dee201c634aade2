"""Text-to-speech backends and the fallback chain."""
