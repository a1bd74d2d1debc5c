// The voice changer's audio processor (an AudioWorklet): a pitch shifter
// (two read heads sweeping a delay line, cross-faded: the classic
// granular shifter) and a robot voice (ring modulation by a sine).
class OnAirVoice extends AudioWorkletProcessor {
  constructor() {
    super();
    this.mode = 'off';
    this.ratio = 1;
    this.freq = 50;
    this.size = 2048; // samples per grain window (~43 ms at 48 kHz)
    this.buf = new Float32Array(this.size * 2);
    this.w = 0;
    this.phase = 0;
    this.osc = 0;
    this.port.onmessage = (e) => {
      const p = e.data || {};
      this.mode = p.mode || 'off';
      this.ratio = Math.pow(2, (Number(p.semitones) || 0) / 12);
      this.freq = Number(p.frequency) || 50;
    };
  }

  process(inputs, outputs) {
    const input = inputs[0] && inputs[0][0];
    const out = outputs[0];
    if (!input) return true;
    const n = input.length;
    const len = this.buf.length;
    for (let i = 0; i < n; i++) {
      let x = input[i];
      this.buf[this.w] = x;
      if (this.mode !== 'off' && this.ratio !== 1) {
        // Two heads half a window apart; each reads at `ratio` speed relative to the writer.
        this.phase = (this.phase + (1 - this.ratio) / this.size + 1) % 1;
        let y = 0;
        for (const off of [0, 0.5]) {
          const ph = (this.phase + off) % 1;
          const delay = ph * this.size;
          let r = this.w - delay;
          if (r < 0) r += len;
          const i0 = Math.floor(r);
          const frac = r - i0;
          const s = this.buf[i0 % len] * (1 - frac) + this.buf[(i0 + 1) % len] * frac;
          y += s * Math.sin(Math.PI * ph); // a window that is 0 where the head jumps
        }
        x = y;
      }
      if (this.mode === 'robot') {
        this.osc += (2 * Math.PI * this.freq) / sampleRate;
        if (this.osc > 2 * Math.PI) this.osc -= 2 * Math.PI;
        x *= Math.sin(this.osc) * 1.6;
      }
      this.w = (this.w + 1) % len;
      for (const ch of out) ch[i] = x;
    }
    return true;
  }
}

registerProcessor('onair-voice', OnAirVoice);
