import { expect } from 'chai';
import { combine, roundRatios, throughputRatio, type RunResult } from '../bench/measure.js';

/** Returns one round's result with the given calls per second. The other fields do not enter the ratio. */
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
  it('pairs rounds despite a slow stretch', () => {
    // A slow stretch halved the service in rounds 2 and 3 and the no-op in round 2: rounds 1 and 2 give 0.9, round 3 gives 0.45.
    const service = combine([round(9000), round(4500), round(4500)]);
    const noop = combine([round(10_000), round(5000), round(10_000)]);
    expect(throughputRatio(service, noop)).to.be.closeTo(0.9, 1e-9);
    // The ratio of the two medians would have been 0.45.
    expect(service.throughput / noop.throughput).to.be.closeTo(0.45, 1e-9);
  });

  it('fails a round without no-op calls', () => {
    const service = combine([round(9000), round(9000), round(9000)]);
    const noop = combine([round(10_000), round(0), round(0)]);
    expect(throughputRatio(service, noop)).to.equal(0);
    expect(roundRatios(service, noop)).to.deep.equal([0.9, 0, 0]);
  });

  it('falls back to medians on unequal rounds', () => {
    const service = combine([round(8000), round(9000), round(10_000)]);
    const noop = combine([round(10_000), round(10_000)]);
    expect(throughputRatio(service, noop)).to.be.closeTo(0.9, 1e-9);
    expect(roundRatios(service, noop)).to.equal(undefined);
  });
});
