import { expect } from 'chai';
import { combine, throughputRatio, type RunResult } from '../bench/measure.js';

/** One round's result with the given calls per second; the other fields do not enter the ratio. */
function round(throughput: number): RunResult {
  return {
    throughput,
    succeeded: Math.round(throughput),
    durationsMs: new Float64Array([1]),
    cpuSeconds: 1,
    mainThreadUtilisation: 1,
    loadGeneratorUtilisation: 0.1,
    otherUtilisation: 0,
  };
}

describe('benchmark throughput ratio', () => {
  it('takes the median of the per-round ratios, so a slow stretch of a shared machine does not skew it', () => {
    // A slow stretch halved the service in rounds 2 and 3 and the no-op in round 2; each round alone says 0.9.
    const service = combine([round(9000), round(4500), round(4500)]);
    const noop = combine([round(10_000), round(5000), round(10_000)]);
    expect(throughputRatio(service, noop)).to.be.closeTo(0.9, 1e-9);
    // The ratio of the two medians would have said 0.45.
    expect(service.throughput / noop.throughput).to.be.closeTo(0.45, 1e-9);
  });

  it('uses the ratio of the medians when the phases have different round counts', () => {
    const service = combine([round(8000), round(9000), round(10_000)]);
    const noop = combine([round(10_000), round(10_000)]);
    expect(throughputRatio(service, noop)).to.be.closeTo(0.9, 1e-9);
  });
});
