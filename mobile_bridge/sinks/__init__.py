"""Where the server's events go on the phone: speech to a speaker (``audio``), captions
and events to a terminal (``console``), and any ``EventObserver`` (the replay report)."""
