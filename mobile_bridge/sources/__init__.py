"""Where the glasses' media comes from, behind one interface (``base.GlassesSource``).

A new device (Brilliant Labs Frame over BLE, a webcam, a phone page) is one new file
here; the session client, playback reports and still answers are written once in
``mobile_bridge.client``.
"""
