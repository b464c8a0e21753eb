import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deny, type Decision } from '../src/auth/decision.js';
import { DecisionLog } from '../src/observability/decision-log.js';
import { createLogger, logDestination } from '../src/observability/logger.js';
import { combine, countDecisions, roundRatios, throughputRatio, type RunResult, type ScenarioResult } from '../bench/measure.js';
import { decisionLogRatio, decisionLogRows } from '../bench/report.js';

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

/** Returns a scenario's result in which the service and the no-op server completed the given calls per second. */
function scenario(name: string, service: number, noop: number | undefined): ScenarioResult {
  const serviceRounds = combine([round(service)]);
  const noopRounds = noop === undefined ? undefined : combine([round(noop)]);
  const server = (phase: ReturnType<typeof combine>) => ({ startupSeconds: 0, peakRssBytes: 0, saturated: phase });
  return {
    scenario: name,
    title: name,
    kind: 'log',
    service: server(serviceRounds),
    noop: noopRounds && server(noopRounds),
    throughputRatio: noopRounds && throughputRatio(serviceRounds, noopRounds),
    verification: '',
  };
}

describe('benchmark decision log ratio', () => {
  it('cancels a machine slowdown', () => {
    // The machine ran at half speed during the silent scenario. Relative to the no-op, the log costs 5%.
    const info = scenario('token-allow', 9500, 10_000);
    const silent = scenario('token-allow-silent', 5000, 5000);
    expect(decisionLogRatio(info, silent)).to.be.closeTo(0.95, 1e-9);
    // The ratio of the two services' throughputs would have been 1.9.
    expect(info.service.saturated.throughput / silent.service.saturated.throughput).to.be.closeTo(1.9, 1e-9);
  });

  it('needs both no-op baselines', () => {
    const info = scenario('token-allow', 9500, 10_000);
    const silent = scenario('token-allow-silent', 10_000, undefined);
    expect(decisionLogRatio(info, silent)).to.equal(undefined);
  });
});

/** Returns the decision-log scenario's result: the service at info against the same service at silent. */
function alternated(info: number[], silent: number[]): ScenarioResult {
  const infoRounds = combine(info.map(round));
  const silentRounds = combine(silent.map(round));
  const server = (phase: ReturnType<typeof combine>) => ({ startupSeconds: 0, peakRssBytes: 0, saturated: phase });
  return {
    scenario: 'decision-log',
    title: 'decision-log',
    kind: 'log',
    service: server(infoRounds),
    comparison: { name: 'silent', result: server(silentRounds) },
    throughputRatio: throughputRatio(infoRounds, silentRounds),
    verification: '',
  };
}

describe('benchmark decision log target', () => {
  it('prefers the alternating rounds', () => {
    // The ratios to the no-op server disagree with the direct comparison, which wins.
    const byName = new Map([
      ['token-allow', scenario('token-allow', 8000, 10_000)],
      ['token-allow-silent', scenario('token-allow-silent', 10_000, 10_000)],
      ['decision-log', alternated([9700, 4850, 9600], [10_000, 5000, 10_000])],
    ]);
    const rows = decisionLogRows(byName);
    expect(rows).to.have.length(1);
    expect(rows[0][0]).to.equal('decision-log: log.level info / silent, alternating rounds');
    expect(rows[0][1]).to.equal('0.97');
    expect(rows[0][3]).to.equal('yes');
  });

  it('falls back to the no-op ratios', () => {
    const byName = new Map([
      ['token-allow', scenario('token-allow', 8000, 10_000)],
      ['token-allow-silent', scenario('token-allow-silent', 10_000, 10_000)],
    ]);
    const rows = decisionLogRows(byName);
    expect(rows).to.have.length(1);
    expect(rows[0][0]).to.equal('log.level info / silent, each relative to the no-op');
    expect(rows[0][1]).to.equal('0.80');
    expect(rows[0][3]).to.equal('NO');
  });

  it('reports nothing without the scenarios', () => {
    expect(decisionLogRows(new Map())).to.deep.equal([]);
  });
});

describe('benchmark decision count', () => {
  /** Returns the lines that the service's decision log writes for the given decisions. */
  function decisionLines(decisions: Decision[]): string {
    const folder = mkdtempSync(join(tmpdir(), 'bench-decisions-'));
    try {
      const path = join(folder, 'service.log');
      const stream = logDestination(path);
      const log = new DecisionLog(createLogger('info', stream));
      for (const [index, decision] of decisions.entries()) {
        log.write('info', { requestId: `request-${index}`, decision, durationSeconds: 0.001, audit: false });
      }
      stream.flushSync();
      return readFileSync(path, 'utf8');
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }

  const allow: Decision = { kind: 'allow', tenant: 'DEFAULT', controllerId: 'device-01', method: 'target-token' };

  it('counts the expected allows', () => {
    const text = decisionLines([allow, allow, { ...allow, method: 'gateway-token' }]);
    expect(countDecisions(text, { result: 'allow', method: 'target-token', httpStatus: 200 })).to.deep.equal({ matching: 2, other: 1 });
  });

  it('accepts alternative deny reasons', () => {
    const text = decisionLines([deny('rate_limited'), deny('token_mismatch'), deny('unknown_target'), allow]);
    const expected = { result: 'deny' as const, reason: 'rate_limited', alternatives: [{ reason: 'token_mismatch', httpStatus: 401 }], httpStatus: 429 };
    expect(countDecisions(text, expected)).to.deep.equal({ matching: 2, other: 2 });
  });

  it('skips lines without a decision', () => {
    expect(countDecisions('{"level":"info","msg":"service started"}\n\n', { result: 'allow', method: 'target-token', httpStatus: 200 })).to.deep.equal({ matching: 0, other: 0 });
  });
});
