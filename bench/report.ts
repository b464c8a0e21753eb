/**
 * Prints the benchmark's results as Markdown tables, so a run can be pasted
 * into docs/benchmarks.md as it is, followed by the targets and whether each
 * one was met in this run.
 */
import { roundRatios, type LoadShape, type PhaseResult, type ScenarioResult, type ServerResult } from './measure.js';
import type { SaturationStep } from './saturation.js';

export interface RedisImportResult {
  targets: number;
  seconds: number;
  usedMemoryBeforeBytes: number;
  usedMemoryAfterBytes: number;
}

export interface Report {
  machine: string[];
  shape: LoadShape;
  results: ScenarioResult[];
  saturation?: SaturationStep[];
  redisImport?: RedisImportResult;
}

/** Start-up time limit of the service with 100,000 targets in the embedded store, in seconds. */
const STARTUP_LIMIT_SECONDS = 2;
/**
 * Run-to-run spread of throughput on the same machine, as a fraction, within
 * which "deny no slower than allow" still counts as met. NOTE: an estimate
 * from repeated runs on a shared 2-core machine; a quieter machine can use less.
 */
const NOISE_FRACTION = 0.03;

export function printReport(report: Report, log: (line: string) => void): void {
  const { results, shape } = report;
  log(`## Saturated: ${shape.connections} connections x ${shape.streams} streams, ${shape.rounds} rounds of ${shape.durationSeconds} s per server`);
  log('');
  table(
    log,
    ['scenario', 'server', 'calls/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'CPU s / 1k calls', 'event loop', 'other load', 'peak RSS MiB', 'start-up s'],
    results.flatMap((result) => [
      serverRow(result.scenario, 'service', result.service, result.service.saturated),
      ...(result.noop ? [serverRow(result.scenario, 'no-op', result.noop, result.noop.saturated)] : []),
      ...(result.comparison ? [serverRow(result.scenario, result.comparison.name, result.comparison.result, result.comparison.result.saturated)] : []),
    ]),
  );

  const fixed = results.filter((result) => result.rate !== undefined && result.noop !== undefined);
  if (fixed.length > 0) {
    log('');
    log(`## Same fixed rate for both servers (${Math.round(shape.rateFraction * 100)}% of the lower saturated throughput)`);
    log('');
    table(
      log,
      ['scenario', 'calls/s offered', 'service p50', 'service p99', 'service p99.9', 'no-op p50', 'no-op p99', 'no-op p99.9'],
      fixed.map((result) => {
        const service = result.service.fixedRate as PhaseResult;
        const noop = result.noop?.fixedRate as PhaseResult;
        return [result.scenario, String(result.rate), ms(service.p50Ms), ms(service.p99Ms), ms(service.p999Ms), ms(noop.p50Ms), ms(noop.p99Ms), ms(noop.p999Ms)];
      }),
    );

    log('');
    log('## Ratios service / no-op');
    log('');
    table(
      log,
      ['scenario', 'throughput', 'throughput by round', 'p99 at fixed rate', 'p99 saturated', 'CPU per call', 'peak RSS'],
      fixed.map((result) => {
        const service = result.service;
        const noop = result.noop as ServerResult;
        return [
          result.scenario,
          (result.throughputRatio as number).toFixed(2),
          roundRatios(service.saturated, noop.saturated)?.map((value) => value.toFixed(2)).join(' ') ?? '-',
          ratio((service.fixedRate as PhaseResult).p99Ms, (noop.fixedRate as PhaseResult).p99Ms),
          ratio(service.saturated.p99Ms, noop.saturated.p99Ms),
          ratio(service.saturated.cpuSecondsPer1k, noop.saturated.cpuSecondsPer1k),
          ratio(service.peakRssBytes, noop.peakRssBytes),
        ];
      }),
    );
  }

  printComparisons(results, log);

  if (report.saturation) {
    log('');
    log('## Saturation check (token-allow, service)');
    log('');
    table(
      log,
      ['connections x streams', 'calls/s', 'p99 ms', 'event loop', 'h2load CPU'],
      report.saturation.map((step) => [
        `${step.connections} x ${step.streams}`,
        String(Math.round(step.throughput)),
        ms(step.p99Ms),
        percent(step.mainThreadUtilisation),
        percent(step.loadGeneratorUtilisation),
      ]),
    );
    const chosen = report.saturation[report.saturation.length - 2];
    const beyond = report.saturation[report.saturation.length - 1];
    const gain = beyond.throughput / chosen.throughput - 1;
    log('');
    log(saturationVerdict(chosen, gain));
  }

  if (report.redisImport) {
    const imported = report.redisImport;
    const perTarget = (imported.usedMemoryAfterBytes - imported.usedMemoryBeforeBytes) / imported.targets;
    log('');
    log('## Redis import');
    log('');
    table(
      log,
      ['targets', 'import s', 'targets/s', 'used_memory before MiB', 'used_memory after MiB', 'bytes per target'],
      [[
        String(imported.targets),
        imported.seconds.toFixed(1),
        String(Math.round(imported.targets / imported.seconds)),
        mib(imported.usedMemoryBeforeBytes),
        mib(imported.usedMemoryAfterBytes),
        String(Math.round(perTarget)),
      ]],
    );
  }

  log('');
  log('## Targets');
  log('');
  table(log, ['target', 'measured', 'limit', 'met'], targetRows(results));
  log('');
  for (const result of results) {
    log(`- ${result.scenario}: ${result.verification}`);
  }
}

/** Prints the ratios of the scenarios that measured a second configuration of the service in the no-op server's place. */
function printComparisons(results: ScenarioResult[], log: (line: string) => void): void {
  const compared = results.filter((result) => result.comparison !== undefined && result.rate !== undefined);
  if (compared.length === 0) {
    return;
  }
  log('');
  log('## Ratios service / the same service in another configuration, alternating rounds');
  log('');
  table(
    log,
    ['scenario', 'compared with', 'throughput', 'throughput by round', 'p99 at fixed rate', 'CPU per call'],
    compared.map((result) => {
      const service = result.service;
      const other = result.comparison!.result;
      return [
        result.scenario,
        result.comparison!.name,
        (result.throughputRatio as number).toFixed(2),
        roundRatios(service.saturated, other.saturated)?.map((value) => value.toFixed(2)).join(' ') ?? '-',
        ratio((service.fixedRate as PhaseResult).p99Ms, (other.fixedRate as PhaseResult).p99Ms),
        ratio(service.saturated.cpuSecondsPer1k, other.saturated.cpuSecondsPer1k),
      ];
    }),
  );
}

function targetRows(results: ScenarioResult[]): string[][] {
  const byName = new Map(results.map((result) => [result.scenario, result]));
  const rows: string[][] = [];

  for (const result of results) {
    if (!result.noop) {
      continue;
    }
    const throughput = result.throughputRatio as number;
    const p99Ratio = (result.service.fixedRate as PhaseResult).p99Ms / (result.noop.fixedRate as PhaseResult).p99Ms;
    if (result.kind === 'token' || result.kind === 'store') {
      rows.push(verdict(`${result.scenario}: throughput / no-op`, throughput, '>= 0.90', throughput >= 0.9));
      rows.push(verdict(`${result.scenario}: p99 / no-op p99 at the same rate`, p99Ratio, '<= 1.20', p99Ratio <= 1.2));
    } else if (result.kind === 'certificate') {
      rows.push(verdict(`${result.scenario}: throughput / no-op`, throughput, '>= 0.80', throughput >= 0.8));
    }
  }

  const allow = byName.get('token-allow');
  for (const name of ['token-deny', 'token-deny-limited', 'non-ddi']) {
    const deny = byName.get(name);
    if (allow && deny) {
      const value = deny.service.saturated.throughput / allow.service.saturated.throughput;
      rows.push(verdict(`${name}: throughput / token-allow throughput`, value, `>= ${(1 - NOISE_FRACTION).toFixed(2)} (1.0 less noise)`, value >= 1 - NOISE_FRACTION));
    }
  }

  rows.push(...decisionLogRows(byName));

  const large = byName.get('store-100k');
  if (large) {
    const seconds = large.service.startupSeconds;
    rows.push([
      `store-100k: start-up (peak RSS ${mib(large.service.peakRssBytes)} MiB)`,
      `${seconds.toFixed(2)} s`,
      `< ${STARTUP_LIMIT_SECONDS} s`,
      seconds < STARTUP_LIMIT_SECONDS ? 'yes' : 'NO',
    ]);
  }

  const one = byName.get('workers-1');
  const two = byName.get('workers-2');
  if (one && two) {
    const value = two.service.saturated.throughput / one.service.saturated.throughput;
    rows.push([`workers 2 / workers 1 throughput`, value.toFixed(2), 'reported', '-']);
  }
  return rows;
}

/**
 * Returns the decision log's target row: from `decision-log`, which alternates
 * the service at `log.level` info and silent in the same rounds, or else from
 * `token-allow` and `token-allow-silent`, each relative to the no-op server.
 */
export function decisionLogRows(byName: ReadonlyMap<string, ScenarioResult>): string[][] {
  const direct = byName.get('decision-log');
  if (direct?.comparison !== undefined && direct.throughputRatio !== undefined) {
    const value = direct.throughputRatio;
    return [verdict(`decision-log: log.level info / ${direct.comparison.name}, alternating rounds`, value, '>= 0.90', value >= 0.9)];
  }
  const allow = byName.get('token-allow');
  const silent = byName.get('token-allow-silent');
  const logRatio = allow && silent ? decisionLogRatio(allow, silent) : undefined;
  if (logRatio === undefined) {
    return [];
  }
  return [verdict('log.level info / silent, each relative to the no-op', logRatio, '>= 0.90', logRatio >= 0.9)];
}

/**
 * Returns the throughput at `log.level: info` over that at `silent`, each taken
 * as a ratio to the no-op server of the same rounds. The two scenarios run
 * minutes apart, and a shared VM's speed changes more than the log costs in that time.
 */
export function decisionLogRatio(info: ScenarioResult, silent: ScenarioResult): number | undefined {
  if (info.throughputRatio === undefined || silent.throughputRatio === undefined) {
    return undefined;
  }
  return info.throughputRatio / silent.throughputRatio;
}

function verdict(name: string, value: number, limit: string, met: boolean): string[] {
  return [name, value.toFixed(2), limit, met ? 'yes' : 'NO'];
}

function serverRow(scenario: string, server: string, result: ServerResult, run: PhaseResult): string[] {
  return [
    scenario,
    server,
    String(Math.round(run.throughput)),
    ms(run.p50Ms),
    ms(run.p99Ms),
    ms(run.p999Ms),
    run.cpuSecondsPer1k.toFixed(3),
    percent(run.mainThreadUtilisation),
    percent(run.otherUtilisation),
    mib(result.peakRssBytes),
    result.startupSeconds.toFixed(2),
  ];
}

function table(log: (line: string) => void, header: string[], rows: string[][]): void {
  const widths = header.map((name, column) => Math.max(name.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  log(line(header));
  log(`| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`);
  rows.forEach((row) => log(line(row)));
}

function ms(value: number): string {
  return value.toFixed(2);
}

function percent(value: number): string {
  return `${Math.round(value * 100)}%`;
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}

function ratio(service: number, noop: number): string {
  return (service / noop).toFixed(2);
}

/** Event-loop share at which a server counts as busy all the time. */
const BUSY_EVENT_LOOP = 0.95;

/**
 * Returns whether the benchmark's load saturates the server, as one sentence. A server whose event loop is busy all
 * the time is saturated even when deeper queues still raise throughput a little, because each
 * event-loop turn then reads and responds to more calls at once.
 */
function saturationVerdict(chosen: SaturationStep, gain: number): string {
  const shape = `${chosen.connections} x ${chosen.streams}`;
  const change = `doubling connections and streams changed throughput by ${(gain * 100).toFixed(1)}%`;
  if (gain < 0.05) {
    return `At the benchmark's ${shape}, ${change}: saturated.`;
  }
  if (chosen.mainThreadUtilisation >= BUSY_EVENT_LOOP) {
    return (
      `At the benchmark's ${shape} the event loop was busy ${percent(chosen.mainThreadUtilisation)} of the time, so the server is saturated. ` +
      `${capitalized(change)}, because deeper queues let each event-loop turn handle more calls.`
    );
  }
  return `At the benchmark's ${shape}, ${change} and the event loop was busy ${percent(chosen.mainThreadUtilisation)}: NOT saturated. Raise --connections or --streams.`;
}

function capitalized(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}
