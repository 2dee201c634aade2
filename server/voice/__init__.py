"""Voice I/O around the interaction model: Opus, VAD, ASR, TTS."""
