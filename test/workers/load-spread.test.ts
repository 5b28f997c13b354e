// `npm run load -- --workers N` reads how the calls spread over the media
// workers from aybiza_worker_calls_active{worker} (src/commands/load.ts).
import { describe, expect, it } from 'vitest';
import { workerSpread } from '../../src/commands/load.js';

describe('load: calls per worker', () => {
  it('reads every worker\'s series and the largest deviation from the mean', () => {
    const text = [
      '# TYPE aybiza_worker_calls_active gauge',
      'aybiza_worker_calls_active{worker="1"} 110',
      'aybiza_worker_calls_active{worker="0"} 90',
      'aybiza_calls_active{transport="twilio"} 200',
    ].join('\n');
    expect(workerSpread(text)).toEqual({ calls: [90, 110], maxDeviationPct: 10 });
  });

  it('is null with one worker (no per-worker series) and counts a silent worker as 0', () => {
    expect(workerSpread('aybiza_calls_active{transport="twilio"} 5\n')).toBeNull();
    expect(workerSpread('aybiza_worker_calls_active{worker="1"} 4\n')).toEqual({ calls: [0, 4], maxDeviationPct: 100 });
  });
});
