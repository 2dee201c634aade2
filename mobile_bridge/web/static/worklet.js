// Audio worklets for the Murmur page: the microphone's capture and the speech player.
// Both run on the audio thread; the page talks to them through their ports.

// Microphone → 20 ms chunks of PCM16 at `targetRate` (16 kHz), whatever the context's
// rate: a box filter then linear interpolation, enough for speech recognition.
class MurmurMic extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = (options.processorOptions && options.processorOptions.targetRate) || 16000;
    this.step = sampleRate / this.target;
    this.pos = 0;
    this.chunk = new Int16Array(this.target / 50);
    this.fill = 0;
    this.prev = 0;
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    const width = Math.max(1, Math.floor(this.step));
    for (; this.pos < input.length; this.pos += this.step) {
      const i = Math.floor(this.pos);
      let sum = 0;
      for (let k = 0; k < width; k++) sum += i - k >= 0 ? input[i - k] : this.prev;
      const v = Math.max(-1, Math.min(1, sum / width));
      this.chunk[this.fill++] = v < 0 ? v * 0x8000 : v * 0x7fff;
      if (this.fill === this.chunk.length) {
        this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
        this.chunk = new Int16Array(this.target / 50);
        this.fill = 0;
      }
    }
    this.pos -= input.length;
    this.prev = input[input.length - 1];
    return true;
  }
}

// Speech player: utterances in arrival order, each started once `jitterMs` of it is
// buffered (or it is complete), cut at once on request. Says what it played: `first`
// when an utterance's first sample goes out, `done`/`cut` with the milliseconds heard,
// and `progress` with the running count of samples played.
class MurmurPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.inRate = o.inRate || 24000;
    this.step = this.inRate / sampleRate;
    this.jitter = Math.round(((o.jitterMs || 60) / 1000) * this.inRate);
    this.queue = [];
    this.playedTotal = 0;
    this.sinceProgress = 0;
    this.port.onmessage = (e) => this.command(e.data);
  }
  find(id) {
    return this.queue.find((u) => u.id === id);
  }
  command(m) {
    if (m.type === "pcm") {
      let u = this.find(m.id);
      if (!u) {
        u = { id: m.id, chunks: [], offset: 0, buffered: 0, played: 0, ended: false, started: false, frac: 0 };
        this.queue.push(u);
      }
      u.chunks.push(m.samples);
      u.buffered += m.samples.length;
    } else if (m.type === "end") {
      const u = this.find(m.id);
      if (u) u.ended = true;
      else this.port.postMessage({ type: "done", id: m.id, playedMs: 0 });
    } else if (m.type === "cut") {
      const u = this.find(m.id);
      this.queue = this.queue.filter((x) => x.id !== m.id);
      this.port.postMessage({ type: "cut", id: m.id, playedMs: u ? this.ms(u) : 0 });
    } else if (m.type === "cutall") {
      for (const u of this.queue) this.port.postMessage({ type: "cut", id: u.id, playedMs: this.ms(u) });
      this.queue = [];
    }
  }
  ms(u) {
    return Math.round((u.played / this.inRate) * 1000);
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    let n = 0;
    while (n < out.length && this.queue.length) {
      const u = this.queue[0];
      // The relay sends utterances one after another, each with its `end` before the
      // next one's audio: a later utterance behind an unended one means that `end` was
      // lost with a dropped socket. Waiting for it would stall the player for good.
      const orphan = !u.ended && this.queue.length > 1;
      if (orphan && (!u.chunks.length || !u.started)) {
        this.queue.shift();
        this.port.postMessage({ type: "cut", id: u.id, playedMs: this.ms(u) });
        continue;
      }
      if (!u.started) {
        if (u.buffered < this.jitter && !u.ended) break;
        u.started = true;
        this.port.postMessage({ type: "first", id: u.id });
      }
      if (!u.chunks.length) {
        if (!u.ended) break; // an underrun: wait for more of this utterance
        this.queue.shift();
        this.port.postMessage({ type: "done", id: u.id, playedMs: this.ms(u) });
        continue;
      }
      const chunk = u.chunks[0];
      out[n++] = chunk[u.offset];
      u.frac += this.step;
      while (u.frac >= 1 && u.chunks.length) {
        u.frac -= 1;
        u.offset++;
        u.played++;
        u.buffered--;
        if (u.offset >= u.chunks[0].length) {
          u.chunks.shift();
          u.offset = 0;
        }
      }
    }
    for (let i = n; i < out.length; i++) out[i] = 0;
    this.playedTotal += Math.round(n * this.step);
    this.sinceProgress += out.length;
    if (this.sinceProgress >= sampleRate / 20 && n) {
      this.sinceProgress = 0;
      this.port.postMessage({ type: "progress", played: this.playedTotal });
    } else if (n && n < out.length) {
      this.port.postMessage({ type: "progress", played: this.playedTotal });
    }
    return true;
  }
}

registerProcessor("murmur-mic", MurmurMic);
registerProcessor("murmur-player", MurmurPlayer);
