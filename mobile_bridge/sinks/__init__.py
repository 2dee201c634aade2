"""Where the server's events go on the phone: speech and cues to a speaker as they arrive
(``playback``, with its ``earcons`` and ``outputs``), one WAV per utterance (``audio``),
captions and events to a terminal (``console``), and any ``EventObserver`` (the replay
report)."""
