-- A stand-in for the Frame/Halo firmware's `frame` global, for running the bridge's
-- app (and the SDK's device-side libraries it requires) under a desktop lua5.4.
-- Used by tests/test_brilliant_lua.py; run as `lua5.4 frame_stub.lua`.
--
-- Environment:
--   STUB_HW        frame.HARDWARE_VERSION: 'Frame' (default) or 'Halo'
--   STUB_LIB_PATH  ';'-separated folders that `require('x.min')` loads 'x.min.lua' from
--                  (as on the glasses' flat file system; '.' is no folder separator)
--   STUB_APP       the module to require and run (the app)
--   STUB_MTU       frame.bluetooth.max_length() (default 200)
--   STUB_JPEG      hex: the photo frame.camera.read() hands out
--   STUB_PCM       hex: the samples the microphone records, over and over
--   STUB_SCRIPT    host events, one a line, taken one per frame.sleep() call:
--                    rx HEX         a packet to the bluetooth receive callback
--                    tap [KIND]     fire the imu tap callback (KIND: single/double/...)
--                    button KIND    fire the Halo button callback (single/double/long)
--                    idle N         let N frame.sleep() calls pass
--   STUB_IDLE_END  frame.sleep() calls after the script before the app is interrupted
--   STUB_MAX_TICKS frame.time.utc() calls before the run is called runaway
--
-- Output, one a line (the app's own prints come in between):
--   STUB:TX HEX       every frame.bluetooth.send payload
--   STUB:LOG WORDS    a camera/microphone/speaker/button call
--   STUB:END interrupted|ok|error MESSAGE|runaway|swallowed (the app kept on after a break)

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == '' then return default end
  return v
end

local function unhex(s)
  return (s:gsub('%s', ''):gsub('%x%x', function(h) return string.char(tonumber(h, 16)) end))
end

local function hex(s)
  return (s:gsub('.', function(c) return string.format('%02x', string.byte(c)) end))
end

local function log(...)
  local parts = {}
  for i = 1, select('#', ...) do parts[#parts + 1] = tostring(select(i, ...)) end
  io.write('STUB:LOG ', table.concat(parts, ' '), '\n')
end

local HW = env('STUB_HW', 'Frame')
local MTU = tonumber(env('STUB_MTU', '200'))
local JPEG = unhex(env('STUB_JPEG', ''))
local PCM = unhex(env('STUB_PCM', ''))
local IDLE_END = tonumber(env('STUB_IDLE_END', '20'))
local MAX_TICKS = tonumber(env('STUB_MAX_TICKS', '200000'))

local events = {}
for line in env('STUB_SCRIPT', ''):gmatch('[^\n]+') do
  local verb, arg = line:match('^%s*(%S+)%s*(.-)%s*$')
  if verb == 'idle' then
    for _ = 1, tonumber(arg) do events[#events + 1] = {'idle'} end
  elseif verb then
    events[#events + 1] = {verb, arg}
  end
end

-- The glasses' flat file system: require('data.min') loads 'data.min.lua'.
for dir in env('STUB_LIB_PATH', '.'):gmatch('[^;]+') do
  package.path = dir .. '/?.lua;' .. package.path
end
table.insert(package.searchers, 2, function(name)
  for dir in env('STUB_LIB_PATH', '.'):gmatch('[^;]+') do
    local path = dir .. '/' .. name .. '.lua'
    local f = io.open(path, 'rb')
    if f then
      f:close()
      return assert(loadfile(path)), path
    end
  end
  return '\n\tno file ' .. name .. '.lua in STUB_LIB_PATH'
end)

local now = 1700000000.0
local ticks = 0
local callbacks = {}
local INTERRUPT = 'stub: interrupted' -- what a host break looks like to is_interrupt

local interrupts = 0
local function finish(how, code)
  io.stdout:flush()
  io.write('STUB:END ', how, '\n')
  os.exit(code)
end
local function interrupt()
  interrupts = interrupts + 1
  if interrupts > 3 then finish('swallowed', 4) end -- the app did not hand the break on
  error(INTERRUPT, 0)
end

frame = {}
frame.HARDWARE_VERSION = HW

frame.time = {}
function frame.time.utc()
  ticks = ticks + 1
  if ticks > MAX_TICKS then finish('runaway', 3) end
  return now -- only frame.sleep() moves the clock, so the microphone fills in sleeps
end

local function next_event()
  local ev = table.remove(events, 1)
  if ev == nil then
    IDLE_END = IDLE_END - 1
    if IDLE_END < 0 then interrupt() end
    return
  end
  local verb, arg = ev[1], ev[2]
  if verb == 'rx' then
    callbacks.receive(unhex(arg))
  elseif verb == 'tap' then
    callbacks.tap(arg ~= '' and arg or nil)
  elseif verb == 'button' then
    callbacks['button_' .. arg]()
  elseif verb ~= 'idle' then
    error('stub: unknown script event ' .. verb)
  end
end

function frame.sleep(seconds)
  now = now + (seconds or 0)
  next_event()
end

function frame.battery_level()
  return 87.5
end

frame.bluetooth = {}
function frame.bluetooth.send(payload)
  assert(type(payload) == 'string', 'bluetooth.send takes a string')
  assert(#payload <= MTU, 'bluetooth.send payload longer than max_length')
  io.write('STUB:TX ', hex(payload), '\n')
end
function frame.bluetooth.receive_callback(fn)
  callbacks.receive = fn
end
function frame.bluetooth.max_length()
  return MTU
end

frame.imu = {}
function frame.imu.tap_callback(fn)
  callbacks.tap = fn
end

local photo = nil -- {data, pos, ready_at}
frame.camera = {}
function frame.camera.capture(opts)
  log('camera_capture', opts.resolution, opts.quality, opts.pan)
  photo = {data = JPEG, pos = 1, ready_at = now + 0.002}
end
function frame.camera.image_ready()
  return photo ~= nil and now >= photo.ready_at
end
local function camera_read(n)
  assert(photo ~= nil, 'camera.read without a capture')
  if photo.pos > #photo.data then
    photo = nil
    return nil
  end
  local chunk = photo.data:sub(photo.pos, photo.pos + n - 1)
  photo.pos = photo.pos + n
  return chunk
end
frame.camera.read = camera_read
frame.camera.read_raw = camera_read
function frame.camera.auto(settings)
  return {error = 0, shutter = 4096, analog_gain = 1, red_gain = 121, green_gain = 64,
          blue_gain = 140}
end
function frame.camera.power_save(on)
  log('camera_power_save', on)
end
function frame.camera.set_shutter(v) end
function frame.camera.set_gain(v) end
function frame.camera.set_white_balance(r, g, b) end

-- The microphone fills at sample_rate * bit_depth / 8 bytes a (virtual) second, with
-- STUB_PCM over and over; what it holds when stopped can still be read, then nil.
local mic = {on = false, made = 0, read = 0, rate = 0, since = 0}
local function mic_fill()
  if mic.on then
    local total = math.floor((now - mic.since) * mic.rate)
    mic.made = math.max(mic.made, total - total % 2)
  end
end
frame.microphone = {}
function frame.microphone.start(opts)
  log('mic_start', opts.sample_rate, opts.bit_depth)
  assert(#PCM > 0, 'STUB_PCM is empty')
  mic.on = true
  mic.rate = opts.sample_rate * opts.bit_depth // 8
  mic.since = now - mic.made / mic.rate
end
function frame.microphone.stop()
  log('mic_stop')
  mic_fill()
  mic.on = false
end
function frame.microphone.read(n)
  assert(math.type(n) == 'integer' and n > 0 and n % 2 == 0,
         'microphone.read takes a positive even size')
  mic_fill()
  local have = mic.made - mic.read
  if have == 0 then
    if mic.on then return '' end
    return nil
  end
  local out = {}
  for i = mic.read, mic.read + math.min(n, have) - 1 do
    local j = i % #PCM + 1
    out[#out + 1] = PCM:sub(j, j)
  end
  mic.read = mic.read + #out
  return table.concat(out)
end

frame.speaker = {}
function frame.speaker.start(opts)
  log('speaker_start', opts.volume, opts.encoder, opts.sample_rate, opts.channels)
end
function frame.speaker.stop()
  log('speaker_stop')
end

if HW ~= 'Frame' then
  frame.button = {}
  for _, kind in ipairs({'single', 'double', 'long'}) do
    frame.button[kind] = function(fn)
      log('button_callback', kind)
      callbacks['button_' .. kind] = fn
    end
  end
end

local ok, err = pcall(require, env('STUB_APP', 'main'))
if ok then
  finish('ok', 0)
elseif err == INTERRUPT then
  finish('interrupted', 0)
else
  finish('error ' .. tostring(err), 1)
end
