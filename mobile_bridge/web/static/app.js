// The Murmur phone page: camera, microphone, location and motion to the relay over one
// WebSocket; the server's speech back through an AudioWorklet player. No token lives
// here: the relay holds the pairing; the page keeps only its per-page id (sessionStorage)
// to pick its session up again after the connection drops (or the page is reloaded: then
// the media wait for a tap on Start, as browsers give audio only to a gesture). A pairing
// link comes in the address's fragment (#pair=murmur://pair?…, from `murmur pair --page`):
// a fragment never reaches a server, and the page drops it from the address bar at once.
"use strict";

const TAG = { FRAME: 1, STILL: 2, PCM: 3, SPEECH_PCM: 0x10 };
const MIC_RATE = 16000;
const OUT_RATE = 24000;
const MAX_SIDE = 640;
const HAZARD_BUZZ = [220, 90, 220];
const MOTION_BATCH_S = 0.5; // wire.py MOTION_BATCH_S
const MOTION_GAP_MS = 500; // samples this far behind the clock: a gap, the batch clock restarts
const PAIR_FRAGMENT = "#pair=";
const SUPERSEDED = 4001; // relay.py SUPERSEDED: another tab picked this session up
const KEPT = 64; // latency stamps, reports and first-sample times kept for the page's life
const $ = (id) => document.getElementById(id);

const murmur = {
  ws: null, page: sessionStorage.getItem("murmur-page"), running: false, wanted: false,
  mode: "general", stream: null, tickHz: 1, frameTimer: null, encoding: false,
  ctx: null, player: null, mic: null, micCtx: null, played: 0, lastFrameAt: 0,
  speechAt: new Map(), retry: 0, wakeLock: null, geoWatch: null, reports: [], linkCode: null,
  firstPlayed: [], paired: false, resumable: false, motionWanted: 0, graceS: 30,
  // Device motion, only while the server asks (SessionReady.motion_hz): the asked rate,
  // whether the listener is on, the batch being filled and its sample clock.
  motionHz: 0, motionOn: false, motionGranted: false, motion: [], motionT0: 0,
  motionRate: 0, motionNext: null, motionPhase: 0, motionSent: 0,
};
window.murmur = murmur;

// ------------------------------------------------------------------ the page

function say(text) { $("state").textContent = text; }
function caption(text) { $("caption").textContent = text; }
function warn(text) {
  const box = $("alert");
  if (!text) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = text;
}
// The label says what a press does (a toggle's aria-pressed beside a changing label
// would be read as "Stop, pressed").
function setRunning(on) {
  murmur.running = on;
  $("start").textContent = on ? "Stop" : "Start";
  $("ask").disabled = !on;
  $("quiet").disabled = !on;
}
function keep(list, item) {
  list.push(item);
  if (list.length > KEPT) list.splice(0, list.length - KEPT);
}
// Captions are read by a screen reader only when asked: Murmur speaks every reply itself,
// and a polite live region would read each one again over its voice.
function readCaptions(on) {
  $("caption").setAttribute("aria-live", on ? "polite" : "off");
  try { localStorage.setItem("murmur-read-captions", on ? "1" : ""); } catch (_) { /* private mode */ }
}
// Whatever the player holds from a socket that is gone will never get its "end": the
// relay already counted it as cut, so the player drops it (else it waits on it forever).
function dropPlayback() {
  if (murmur.player) murmur.player.port.postMessage({ type: "cutall" });
}

// ------------------------------------------------------------------ the socket

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  murmur.ws = ws;
  ws.onopen = () => {
    murmur.retry = 0;
    ws.send(JSON.stringify({ type: "hello", page: murmur.page }));
  };
  ws.onmessage = (e) => (typeof e.data === "string" ? onJson(JSON.parse(e.data)) : onBinary(e.data));
  ws.onclose = (e) => {
    if (murmur.ws !== ws) return;
    stopFrames();
    dropPlayback();
    if (e.code === SUPERSEDED) {
      if (murmur.running) { release(); setRunning(false); }
      $("st-link").textContent = "in another tab";
      warn("This Murmur session was picked up by another tab or window. Reload this page to take it back.");
      say("Moved to another tab.");
      return;
    }
    $("st-link").textContent = "relay lost";
    warn(`Lost the connection to the Murmur relay. Reconnecting… Your session is kept for ${murmur.graceS} seconds.`);
    say("Reconnecting…");
    const wait = Math.min(5000, 300 * 2 ** murmur.retry++);
    setTimeout(connect, wait);
  };
}

function send(obj) {
  if (murmur.ws && murmur.ws.readyState === WebSocket.OPEN) murmur.ws.send(JSON.stringify(obj));
}
function sendMedia(tag, bytes, stampMs) {
  if (!murmur.ws || murmur.ws.readyState !== WebSocket.OPEN) return;
  const buf = new Uint8Array(9 + bytes.byteLength);
  buf[0] = tag;
  new DataView(buf.buffer).setBigUint64(1, BigInt(Math.round(stampMs)));
  buf.set(new Uint8Array(bytes), 9);
  murmur.ws.send(buf);
}

function onJson(m) {
  switch (m.type) {
    case "welcome":
      murmur.page = m.page;
      murmur.paired = m.paired;
      murmur.graceS = m.grace_s || murmur.graceS;
      sessionStorage.setItem("murmur-page", m.page);
      $("pairing").hidden = m.paired;
      warn(""); // a new socket: "Reconnecting…" is over, whatever comes next
      dropPlayback(); // anything still queued came over the socket that is gone
      if (m.running && (murmur.stream || murmur.micStream)) {
        say("Reconnected: running");
        setRunning(true);
        if (m.tick_hz) startFrames(m.tick_hz);
        wantMotion(m.motion_hz || 0);
      } else if (m.running) {
        // Reloaded mid-session: the session is there, the camera and microphone are not
        // (and audio needs a tap). Watching pauses until Start is pressed.
        murmur.resumable = true;
        murmur.tickHz = m.tick_hz || murmur.tickHz;
        murmur.motionWanted = m.motion_hz || 0;
        send({ type: "control", action: "pause", value: true });
        say("Your session is still running. Press Start to resume.");
      } else {
        murmur.resumable = false;
        if (murmur.running) sessionEnded();
        if (m.ended) warn(m.ended);
        say(m.paired ? "Ready. Press Start." : "Not paired yet.");
      }
      if (murmur.linkCode) { // opened from a scanned pairing QR code
        if (!m.paired) pair(murmur.linkCode);
        else {
          $("pairing").hidden = false;
          say("Already paired. Press Pair to pair with the scanned server instead.");
        }
        murmur.linkCode = null;
      }
      break;
    case "paired":
      murmur.paired = true;
      $("pairing").hidden = true;
      warn("");
      say("Paired. Press Start.");
      break;
    case "ready":
      $("st-link").textContent = "connected";
      say("Running");
      startFrames(m.tick_hz || 1);
      wantMotion(m.motion_hz || 0);
      break;
    case "speech":
      murmur.speechAt.set(m.utterance, performance.now());
      if (murmur.speechAt.size > KEPT) murmur.speechAt.delete(murmur.speechAt.keys().next().value);
      caption(m.text);
      break;
    case "transcript":
      if (m.final) $("heard").textContent = `You said: ${m.text}`;
      break;
    case "tick":
      if (m.frame_age_ms >= 0) $("st-frame").textContent = `${Math.round(m.frame_age_ms)} ms`;
      break;
    case "cue":
      cue(m);
      break;
    case "end":
    case "cut":
      if (murmur.player) murmur.player.port.postMessage({ type: m.type, id: m.utterance });
      else send({ type: "played", utterance: m.utterance, played_ms: 0, finished: false });
      break;
    case "still":
      sendStill();
      break;
    case "notice":
      warn(m.message);
      break;
    case "status":
      $("st-link").textContent = m.message.replace(/^\(|\)$/g, "");
      break;
    case "error":
      warn(m.message);
      if (m.where === "pair") $("pairing").hidden = false;
      if (m.where === "pair" && m.confirm) murmur.paired = true;
      if (m.where === "start" || m.where === "session") sessionEnded();
      break;
    case "closed":
      sessionEnded();
      break;
  }
}

function onBinary(data) {
  const bytes = new Uint8Array(data);
  if (bytes[0] !== TAG.SPEECH_PCM || !murmur.player) return;
  const idLen = bytes[1];
  const id = new TextDecoder().decode(bytes.subarray(2, 2 + idLen));
  const pcm = new Int16Array(data.slice(2 + idLen));
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  murmur.player.port.postMessage({ type: "pcm", id, samples }, [samples.buffer]);
}

// ------------------------------------------------------------------ audio

async function openAudio() {
  if (murmur.ctx) return;
  let ctx;
  try { ctx = new AudioContext({ sampleRate: OUT_RATE, latencyHint: "interactive" }); }
  catch (_) { ctx = new AudioContext({ latencyHint: "interactive" }); }
  await ctx.audioWorklet.addModule("/static/worklet.js");
  const player = new AudioWorkletNode(ctx, "murmur-player", {
    numberOfInputs: 0, outputChannelCount: [1], processorOptions: { inRate: OUT_RATE, jitterMs: 60 },
  });
  player.connect(ctx.destination);
  player.port.onmessage = (e) => onPlayer(e.data);
  await ctx.resume();
  murmur.ctx = ctx;
  murmur.player = player;
}

function onPlayer(m) {
  if (m.type === "progress") {
    murmur.played = m.played;
    $("status").dataset.played = String(m.played); // for tests; not shown
  } else if (m.type === "first") {
    const at = murmur.speechAt.get(m.id);
    if (at !== undefined) $("st-latency").textContent = `${Math.round(performance.now() - at)} ms`;
    keep(murmur.firstPlayed, { id: m.id, at: performance.now() + performance.timeOrigin });
  } else if (m.type === "done" || m.type === "cut") {
    murmur.speechAt.delete(m.id);
    keep(murmur.reports, m);
    send({ type: "played", utterance: m.id, played_ms: m.playedMs, finished: m.type === "done" });
  }
}

// Earcons: short tones the wearer learns; hazards also buzz the phone.
function cue(m) {
  const tones = { hazard: [880, 660], attention: [660], thinking: [440], done: [523, 784] };
  if (murmur.ctx) {
    let t = murmur.ctx.currentTime + 0.01;
    for (const f of tones[m.kind] || [660]) {
      const osc = murmur.ctx.createOscillator();
      const gain = murmur.ctx.createGain();
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.25 * (m.intensity || 0.6), t);
      gain.gain.exponentialRampToValueAtTime(0.001, t + 0.15);
      osc.connect(gain).connect(murmur.ctx.destination);
      osc.start(t);
      osc.stop(t + 0.16);
      t += 0.17;
    }
  }
  if (m.kind === "hazard" && navigator.vibrate) navigator.vibrate(HAZARD_BUZZ);
}

async function openMic(stream) {
  const track = stream.getAudioTracks()[0];
  if (!track) return false;
  // At the device's own rate: Firefox refuses a media stream source in a context of
  // another rate, and the worklet resamples to MIC_RATE anyway.
  const ctx = new AudioContext();
  murmur.micCtx = ctx;
  await ctx.audioWorklet.addModule("/static/worklet.js");
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const node = new AudioWorkletNode(ctx, "murmur-mic", { processorOptions: { targetRate: MIC_RATE } });
  node.port.onmessage = (e) => { if (murmur.running) sendMedia(TAG.PCM, e.data, Date.now() - 20); };
  source.connect(node);
  await ctx.resume();
  murmur.mic = node;
  return true;
}

// ------------------------------------------------------------------ camera

async function openMedia() {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };
  const video = { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } };
  const problems = [];
  let camera = null;
  let mic = null;
  try { camera = await navigator.mediaDevices.getUserMedia({ video }); }
  catch (e) { problems.push(cameraProblem(e)); }
  try { mic = await navigator.mediaDevices.getUserMedia({ audio }); }
  catch (e) { problems.push(micProblem(e)); }
  return { camera, mic, problems };
}
function cameraProblem(e) {
  if (e && e.name === "NotAllowedError")
    return "Camera access was denied, so Murmur cannot see. Allow the camera for this page in the browser's site settings, then press Start again.";
  if (e && e.name === "NotFoundError") return "No camera was found. Murmur runs without seeing: ask by voice.";
  return `The camera could not start (${e && e.name}). Close other apps using it and press Start again.`;
}
function micProblem(e) {
  if (e && e.name === "NotAllowedError")
    return "Microphone access was denied: Murmur cannot hear you. Use the buttons, or allow the microphone and press Start again.";
  if (e && e.name === "NotFoundError") return "No microphone was found: Murmur cannot hear you. Use the buttons to ask.";
  return `The microphone could not start (${e && e.name}). Use the buttons to ask.`;
}

function startFrames(hz) {
  murmur.tickHz = hz;
  stopFrames();
  if (!murmur.stream) return;
  murmur.frameTimer = setInterval(sendFrame, 1000 / Math.max(0.2, Math.min(hz, 10)));
}
function stopFrames() {
  if (murmur.frameTimer) clearInterval(murmur.frameTimer);
  murmur.frameTimer = null;
}
function grab(maxSide, quality, tag) {
  const v = $("preview");
  if (!v.videoWidth || murmur.encoding) return false;
  const scale = Math.min(1, maxSide / Math.max(v.videoWidth, v.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round((v.videoWidth * scale) / 2) * 2;
  canvas.height = Math.round((v.videoHeight * scale) / 2) * 2;
  canvas.getContext("2d").drawImage(v, 0, 0, canvas.width, canvas.height);
  const at = Date.now();
  murmur.encoding = true;
  canvas.toBlob(async (blob) => {
    murmur.encoding = false;
    if (!blob) return;
    sendMedia(tag, await blob.arrayBuffer(), at);
    if (tag === TAG.FRAME) murmur.lastFrameAt = at;
  }, "image/jpeg", quality);
  return true;
}
function sendFrame() { if (!document.hidden) grab(MAX_SIDE, 0.7, TAG.FRAME); }
// The server waits for its still: a frame being encoded, or the camera still starting,
// delays it a little rather than losing it (the relay gives up after 5 s).
function sendStill(tries = 0) {
  if (!grab(4096, 0.9, TAG.STILL) && murmur.stream && tries < 60) setTimeout(() => sendStill(tries + 1), 50);
}

// ------------------------------------------------------------------ sensors

function startSensors() {
  if (navigator.geolocation) {
    murmur.geoWatch = navigator.geolocation.watchPosition(
      (p) => send({
        type: "location", lat: p.coords.latitude, lon: p.coords.longitude,
        accuracy: p.coords.accuracy || 0, heading: p.coords.heading || 0,
        speed: p.coords.speed || 0, time: p.timestamp,
      }),
      () => {}, { enableHighAccuracy: true, maximumAge: 2000 },
    );
  }
}
function stopSensors() {
  if (murmur.geoWatch !== null) navigator.geolocation.clearWatch(murmur.geoWatch);
  murmur.geoWatch = null;
  wantMotion(0);
}

// Device motion for fall detection, only while the server asks for it. Where the browser
// has DeviceMotionEvent.requestPermission() (iOS; recent Chrome, which answers from the
// site's motion-sensor setting) motion events come only once it says "granted"; iOS
// says so only to a tap, so when asking without one fails the page shows a button.
function wantMotion(hz) {
  murmur.motionHz = hz;
  const ask = $("motion-ask");
  if (!hz) {
    window.removeEventListener("devicemotion", onMotion);
    murmur.motionOn = false;
    murmur.motion = [];
    ask.hidden = true;
    $("st-motion").textContent = "off";
    return;
  }
  if (typeof DeviceMotionEvent === "undefined") {
    $("st-motion").textContent = "no motion sensor";
    return;
  }
  if (typeof DeviceMotionEvent.requestPermission === "function" && !murmur.motionGranted) {
    // Allowed before (this visit): granted without a tap. Else it refuses without a
    // tap, and the button asks.
    const askTap = () => {
      if (!murmur.motionHz || murmur.motionOn) return;
      ask.hidden = false;
      $("st-motion").textContent = "needs your permission";
      say("Running. Fall detection needs the motion sensor: press Allow motion sensing.");
    };
    DeviceMotionEvent.requestPermission().then((answer) => {
      if (answer !== "granted") return askTap();
      murmur.motionGranted = true;
      if (murmur.motionHz) listenMotion();
    }, askTap);
    return;
  }
  listenMotion();
}
function listenMotion() {
  $("motion-ask").hidden = true;
  if (murmur.motionOn) return;
  murmur.motionOn = true;
  murmur.motionNext = null;
  murmur.motionPhase = 0;
  window.addEventListener("devicemotion", onMotion);
  $("st-motion").textContent = "on";
}
async function allowMotion() {
  let answer = "denied";
  try { answer = await DeviceMotionEvent.requestPermission(); }
  catch (e) { answer = (e && e.name) || "denied"; }
  if (answer === "granted") {
    murmur.motionGranted = true;
    warn("");
    if (murmur.motionHz) listenMotion();
    say("Running");
  } else {
    $("st-motion").textContent = "not allowed";
    warn("Motion sensing is not allowed for this page, so Murmur cannot notice a fall. Allow motion sensors for this page in the browser's site settings (on an iPhone: close the tab and open the page again), then press Allow motion sensing.");
  }
}
// Each event is one sample at the device's rate (its `interval`); kept at the asked rate
// (never above the device's) and stamped on an even clock, as DeviceMotion requires.
function onMotion(e) {
  const a = e.accelerationIncludingGravity;
  if (!murmur.motionHz || !a || a.x === null || a.y === null || a.z === null) return;
  let interval = e.interval > 0 ? e.interval : 1000 / 60;
  if (interval < 1) interval *= 1000; // some WebKit versions give seconds
  const deviceHz = 1000 / interval;
  const rate = Math.min(murmur.motionHz, deviceHz);
  murmur.motionPhase += rate / deviceHz;
  if (murmur.motionPhase < 1 - 1e-9) return;
  murmur.motionPhase -= 1;
  const now = Date.now();
  if (murmur.motion.length && (rate !== murmur.motionRate || now - murmur.motionNext > MOTION_GAP_MS))
    flushMotion();
  if (!murmur.motion.length) {
    if (murmur.motionNext === null || rate !== murmur.motionRate || now - murmur.motionNext > MOTION_GAP_MS)
      murmur.motionNext = now; // (re)start the clock; otherwise batches follow on exactly
    murmur.motionT0 = murmur.motionNext;
    murmur.motionRate = rate;
  }
  murmur.motion.push([a.x, a.y, a.z]);
  murmur.motionNext += 1000 / rate;
  if (murmur.motion.length >= Math.max(1, Math.round(rate * MOTION_BATCH_S))) flushMotion();
}
function flushMotion() {
  const s = murmur.motion;
  if (!s.length) return;
  send({ type: "motion", t0: Math.round(murmur.motionT0), rate: murmur.motionRate,
    x: s.map((v) => v[0]), y: s.map((v) => v[1]), z: s.map((v) => v[2]) });
  murmur.motion = [];
  murmur.motionSent += s.length;
}

async function wakeLock() {
  try { if (navigator.wakeLock) murmur.wakeLock = await navigator.wakeLock.request("screen"); }
  catch (_) { /* not granted (battery saver): the page still works */ }
}

// ------------------------------------------------------------------ start / stop

async function start() {
  warn("");
  say("Starting…");
  await openAudio();
  const { camera, mic, problems } = await openMedia();
  if (problems.length) warn(problems.join(" "));
  murmur.stream = camera;
  murmur.micStream = mic;
  if (!camera && !mic) { say("Not started"); return; }
  if (camera) {
    const v = $("preview");
    v.srcObject = camera;
    v.setAttribute("data-live", "");
    await v.play().catch(() => {});
  }
  const hasMic = mic ? await openMic(mic) : false;
  setRunning(true);
  startSensors();
  wakeLock();
  if (murmur.resumable) { // the session survived a reload: give it the media again
    murmur.resumable = false;
    send({ type: "control", action: "pause", value: false });
    startFrames(murmur.tickHz);
    wantMotion(murmur.motionWanted);
    say("Resumed: running");
    return;
  }
  send({ type: "start", mode: murmur.mode, camera: !!camera, microphone: hasMic, haptics: !!navigator.vibrate });
  say("Connecting to the server…");
}

function release() {
  stopFrames();
  stopSensors();
  for (const s of [murmur.stream, murmur.micStream]) if (s) s.getTracks().forEach((t) => t.stop());
  murmur.stream = murmur.micStream = null;
  $("preview").removeAttribute("data-live");
  if (murmur.micCtx) murmur.micCtx.close();
  murmur.micCtx = murmur.mic = null;
  if (murmur.player) murmur.player.port.postMessage({ type: "cutall" });
  if (murmur.wakeLock) murmur.wakeLock.release().catch(() => {});
  murmur.wakeLock = null;
}

function sessionEnded() {
  release();
  setRunning(false);
  $("st-link").textContent = "not connected";
  say("Stopped. Press Start to begin again.");
}

function toggle() {
  if (murmur.running) { send({ type: "stop" }); release(); setRunning(false); say("Stopping…"); }
  else start().catch((e) => { release(); setRunning(false); warn(`Could not start: ${e.message}`); say("Not started"); });
}

// Replacing a pairing moves where the camera goes: only with the user's yes.
function pair(code) {
  let replace = false;
  if (murmur.paired) {
    replace = window.confirm("This relay is already paired with a Murmur server. Replace that pairing with the new one?");
    if (!replace) { say("Kept the current pairing."); return; }
  }
  say("Pairing…");
  send({ type: "pair", code, replace });
}

// A scanned pairing QR opens the page as https://HOST:PORT/#pair=murmur://pair?…: the
// link goes into the form (paired at once when the relay has no pairing yet) and out of
// the address bar and the history.
function pairingFromAddress() {
  if (!location.hash.startsWith(PAIR_FRAGMENT)) return;
  const raw = location.hash.slice(PAIR_FRAGMENT.length);
  let code = raw;
  try { code = decodeURIComponent(raw); } catch (_) { /* not escaped: as it is */ }
  history.replaceState(null, "", location.pathname + location.search);
  $("pair-code").value = code.trim();
  murmur.linkCode = code.trim() || null;
}

// The modes are a radio group: one Tab stop, arrow keys move and choose.
function setMode(mode) {
  murmur.mode = mode;
  for (const b of document.querySelectorAll("[data-mode]")) {
    b.setAttribute("aria-checked", b.dataset.mode === mode ? "true" : "false");
    b.tabIndex = b.dataset.mode === mode ? 0 : -1;
  }
  if (murmur.running) send({ type: "control", action: "mode", value: mode });
}
function modeKeys(e) {
  const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  if (!(e.key in keys)) return;
  e.preventDefault();
  const all = [...document.querySelectorAll("[data-mode]")];
  const at = all.findIndex((b) => b.dataset.mode === murmur.mode);
  const next = all[(at + keys[e.key] + all.length) % all.length];
  setMode(next.dataset.mode);
  next.focus();
}

document.addEventListener("visibilitychange", () => {
  send({ type: "visibility", hidden: document.hidden });
  if (!murmur.running) return;
  if (document.hidden) {
    warn("Murmur is paused while this page is in the background: the phone stops the camera there. Bring the page back to keep watching.");
  } else {
    warn("");
    if (murmur.wakeLock === null || murmur.wakeLock.released) wakeLock();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  $("start").addEventListener("click", toggle);
  $("ask").addEventListener("click", () => send({ type: "control", action: "ask", value: "" }));
  $("quiet").addEventListener("click", () => send({ type: "control", action: "stop_speaking" }));
  for (const b of document.querySelectorAll("[data-mode]"))
    b.addEventListener("click", () => setMode(b.dataset.mode));
  $("modes").addEventListener("keydown", modeKeys);
  let readAloud = false;
  try { readAloud = localStorage.getItem("murmur-read-captions") === "1"; } catch (_) { /* private mode */ }
  $("read-captions").checked = readAloud;
  readCaptions(readAloud);
  $("read-captions").addEventListener("change", (e) => readCaptions(e.target.checked));
  $("motion-allow").addEventListener("click", allowMotion);
  $("pair-form").addEventListener("submit", (e) => {
    e.preventDefault();
    pair($("pair-code").value.trim());
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && murmur.running) send({ type: "control", action: "stop_speaking" });
  });
  pairingFromAddress();
  connect();
});
