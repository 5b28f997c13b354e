// A small energy detector with onset/hangover, used for barge-in until the
// native VAD (issue 3) is in: speech after 60 ms above the threshold, silence
// after 300 ms below it. It runs on PCM decoded by the native G.711 core.
export interface VadEvent {
  speech: boolean;
  /** This frame alone is above the threshold. */
  loud: boolean;
  /** 'start' | 'end' on a state change, else null. */
  change: 'start' | 'end' | null;
}

export class EnergyVad {
  private above = 0;
  private below = 0;
  speaking = false;

  constructor(
    private readonly thresholdRms = 700,
    private readonly onsetFrames = 3,
    private readonly hangoverFrames = 15,
  ) {}

  process(pcm: Int16Array, n = pcm.length): VadEvent {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += pcm[i] * pcm[i];
    const loud = Math.sqrt(sum / Math.max(1, n)) > this.thresholdRms;
    if (loud) {
      this.above++;
      this.below = 0;
      if (!this.speaking && this.above >= this.onsetFrames) {
        this.speaking = true;
        return { speech: true, loud, change: 'start' };
      }
    } else {
      this.below++;
      this.above = 0;
      if (this.speaking && this.below >= this.hangoverFrames) {
        this.speaking = false;
        return { speech: false, loud, change: 'end' };
      }
    }
    return { speech: this.speaking, loud, change: null };
  }

  reset(): void {
    this.above = this.below = 0;
    this.speaking = false;
  }
}
