// The voice changer: the microphone track through a Web Audio graph
// (the `onair-voice` worklet: pitch up/down, robot) into a new track the
// studio publishes with replaceTrack, so switching voices never renegotiates.

export class VoiceChanger {
  constructor() {
    this.ctx = null;
    this.node = null;
    this.source = null;
    this.dest = null;
    this.micTrack = null;
    this.settings = { mode: 'off' };
  }

  /** The processed track for `micTrack` (made once per microphone). */
  async track(micTrack) {
    if (!this.ctx) {
      this.ctx = new AudioContext({ latencyHint: 'interactive' });
      await this.ctx.audioWorklet.addModule('/static/filters/voice-worklet.js');
      this.node = new AudioWorkletNode(this.ctx, 'onair-voice');
      this.dest = this.ctx.createMediaStreamDestination();
      this.node.connect(this.dest);
      this.node.port.postMessage(this.settings);
    }
    if (this.micTrack !== micTrack) {
      if (this.source) this.source.disconnect();
      this.source = this.ctx.createMediaStreamSource(new MediaStream([micTrack]));
      this.source.connect(this.node);
      this.micTrack = micTrack;
    }
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    return this.dest.stream.getAudioTracks()[0];
  }

  /** `{mode: 'off' | 'pitch' | 'robot', semitones, frequency}`. */
  set(settings) {
    this.settings = settings;
    if (this.node) this.node.port.postMessage(settings);
  }
}
