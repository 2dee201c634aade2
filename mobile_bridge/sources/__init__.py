"""Where the glasses' media comes from, behind one interface (``base.GlassesSource``).

A new device (Brilliant Labs Frame over BLE, a webcam, a phone page) is one new file
here; the session client, playback reports and still answers are written once in
``mobile_bridge.client``. Here now: ``replay`` (files, on a media timeline) and
``camera`` (a camera on this machine, with a ``microphone``), both handing blocking
capture to threads through ``capture.CaptureBuffer``; and ``brilliant`` (Brilliant Labs
Frame and Halo over Bluetooth LE, through their SDK: ``brilliant_keeper`` keeps the
link up, ``brilliant_link`` holds the SDK's receivers, ``brilliant_app`` is the Lua the
glasses run, ``brilliant_speaker`` plays speech on Halo).
"""
