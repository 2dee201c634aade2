"""Speech-to-text backends: ``base`` holds the interface, ``whisper`` the default."""
