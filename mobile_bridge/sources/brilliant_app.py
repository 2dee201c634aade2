"""The app the bridge runs on Brilliant Labs Frame and Halo, and the message codes it speaks.

The glasses run Lua: on each connection the bridge uploads the SDK's own device-side
libraries (``brilliant_msg/lua/*.min.lua``: data framing, camera, microphone, taps,
battery) and this small app on top, then starts it. The app answers the host's
messages (``brilliant_msg`` ``Tx*`` encodings) and sends what the receivers of the SDK
(``RxPhoto``, ``RxAudio``, ``RxTap``, ``RxClick``) read, on the codes those default to.
A photo is sent a few packets at a time between microphone reads
(``camera.start_capture``/``send_pending``), so a photo never starves the microphone.
"""

from __future__ import annotations

__all__ = [
    "APP_FILE",
    "APP_MODULE",
    "APP_READY",
    "AUDIO_FINAL_MSG",
    "AUDIO_MSG",
    "BATTERY_MSG",
    "CAPTURE_MSG",
    "CLICK_MSG",
    "IMAGE_FINAL_MSG",
    "IMAGE_MSG",
    "MIC_MSG",
    "SDK_LIBS",
    "SPEAKER_MSG",
    "TAP_MSG",
    "app_source",
]

# Host → glasses (data messages, framed by BrilliantBle.send_message)
CAPTURE_MSG = 0x0D  # TxCaptureSettings: take a photo and send it
MIC_MSG = 0x30  # TxCode 1: stream the microphone; 0: stop
SPEAKER_MSG = 0x31  # TxCode volume 1..100: open the Halo speaker; 0: close it

# Glasses → host (the SDK receivers' default codes)
AUDIO_MSG, AUDIO_FINAL_MSG = 0x05, 0x06  # audio.lua / RxAudio
IMAGE_MSG, IMAGE_FINAL_MSG = 0x07, 0x08  # camera.lua / RxPhoto
TAP_MSG = 0x09  # tap.lua / RxTap (Frame: bare; Halo: + kind 1..3)
CLICK_MSG = 0x0B  # RxClick: + ClickType 1..3 (Halo's button)
BATTERY_MSG = 0x0C  # battery.lua: + percent

SDK_LIBS = ("data", "code", "camera", "audio", "tap", "battery")
APP_MODULE = "murmur_app"
APP_FILE = f"{APP_MODULE}.lua"
APP_READY = "murmur app running"

_APP = r"""
local data = require('data.min')
local code = require('code.min')
local camera = require('camera.min')
local audio = require('audio.min')
local tap = require('tap.min')
local battery = require('battery.min')

local CAPTURE_MSG = @CAPTURE@
local MIC_MSG = @MIC@
local SPEAKER_MSG = @SPEAKER@
local CLICK_MSG = @CLICK@

local is_frame = frame.HARDWARE_VERSION == 'Frame'
local mic_cfg = {sample_rate = @RATE@, bit_depth = @BITS@}
local mic_on = false
local last_batt = 0
local last_ae = 0

local function is_interrupt(err)
  return type(err) == 'string' and string.find(err, 'interrupted$') ~= nil
end

local function click(kind)
  return function() pcall(frame.bluetooth.send, string.char(CLICK_MSG, kind)) end
end

local function handle(items)
  for i = 1, #items do
    local flag, raw = items[i][1], items[i][2]
    if flag == CAPTURE_MSG then
      if not camera.is_sending() then
        camera.start_capture(camera.parse_capture_settings(raw))
      end
    elseif flag == MIC_MSG then
      if code.parse_code(raw).value == 1 then
        audio.start(mic_cfg)
        mic_on = true
      else
        audio.stop() -- mic_on ends once read() says the stream is over
      end
    elseif flag == SPEAKER_MSG and not is_frame then
      local volume = code.parse_code(raw).value
      if volume > 0 then
        frame.speaker.start{encoder='pcm', sample_rate=16000, channels=1, volume=volume}
      else
        frame.speaker.stop()
      end
    end
  end
end

local function step()
  handle(data.process_raw_items())
  local busy = camera.is_sending()
  if busy then camera.send_pending(4) end
  if mic_on then
    for _ = 1, 4 do
      local sent = audio.read_and_send_audio()
      if sent == nil then mic_on = false break end
      if sent == 0 then break end
      busy = true
    end
  end
  if is_frame and camera.is_auto_exp then
    local t = frame.time.utc()
    if t - last_ae > 0.1 then camera.run_auto_exposure() last_ae = t end
  end
  last_batt = battery.send_batt_if_elapsed(last_batt, 60)
  if not busy then frame.sleep(mic_on and 0.005 or 0.01) end -- ~1 s of audio is buffered
end

frame.imu.tap_callback(tap.send_tap)
if not is_frame then
  frame.button.single(click(1))
  frame.button.double(click(2))
  frame.button.long(click(3))
end
pcall(frame.camera.power_save, false)
print('@READY@')

while true do
  local ok, err = pcall(step)
  if not ok then
    if is_interrupt(err) then error(err, 0) end -- hand a break on to the REPL
    print(err)
  end
end
"""


def app_source(mic_rate_hz: int, mic_bit_depth: int) -> str:
    """The app's Lua, for a microphone at ``mic_rate_hz`` (8000/16000) and
    ``mic_bit_depth`` (8/16) bits of signed PCM."""
    values = {
        "@CAPTURE@": f"0x{CAPTURE_MSG:02x}",
        "@MIC@": f"0x{MIC_MSG:02x}",
        "@SPEAKER@": f"0x{SPEAKER_MSG:02x}",
        "@CLICK@": f"0x{CLICK_MSG:02x}",
        "@RATE@": str(mic_rate_hz),
        "@BITS@": str(mic_bit_depth),
        "@READY@": APP_READY,
    }
    text = _APP
    for key, value in values.items():
        text = text.replace(key, value)
    return text.lstrip()
