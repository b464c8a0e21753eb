/**
 * Measures one scenario. It runs the service and, for comparison, the no-op
 * server: each first at saturation, then at one fixed rate that both sustain.
 * It verifies the decisions and collects CPU and memory figures.
 *
 * The two servers take turns in short rounds rather than one long run each,
 * so that other load on a shared machine falls on both about equally. The
 * order flips every round (service, no-op, no-op, service, ...), so neither
 * server always runs first after a pause. Every round starts each server as a
 * new process, so that no round inherits the heap, code and log file that
 * earlier rounds left behind.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { loadConfigFile } from '../src/config/load.js';
import { FLUSH_INTERVAL_MS } from '../src/observability/log-stream.js';
import type { CheckRequestMessage, CheckResponseMessage } from '../src/envoy/messages.js';
import { decisionMismatch, sendCheck } from './check-client.js';
import type { BenchCertificates } from './certificates.js';
import { grpcRequestBody } from './grpc-frame.js';
import { H2loadError, percentile, runLoad, type LoadResult } from './h2load.js';
import { machineBusySeconds } from './machine-load.js';
import type { ConfigContext, ExpectedDecision, Scenario } from './scenarios.js';
import { ServerProcess, type ServerSpec } from './server-process.js';
import { freeLoopbackPort } from './tools.js';

/** Calls sent with the gRPC client after the load, to check every server's decision on the wire. */
const SPOT_CHECKS = 3;
/** Calls sent to get the scenario's decision before the load; above the failure limiter's default per-target limit. */
const CAPTURE_ATTEMPTS = 100;
/** Time waited after the warm-up before the service's log offset is read, so that the warm-up's buffered lines are written first. */
const LOG_SETTLE_MS = 5 * FLUSH_INTERVAL_MS;
/** Tries of one load run when h2load ends abnormally. */
const H2LOAD_ATTEMPTS = 2;

export interface LoadShape {
  /** HTTP/2 connections of the load generator. */
  connections: number;
  /** Concurrent calls per connection. */
  streams: number;
  warmupSeconds: number;
  /** Length of one measured round, in seconds. */
  durationSeconds: number;
  /** Rounds per phase; each server runs once per round. */
  rounds: number;
  /** Fixed-rate phase: this fraction of the lower of the two saturated throughputs. */
  rateFraction: number;
}

/** One load run against one server, with the server's CPU over the same interval. */
export interface RunResult {
  throughput: number;
  succeeded: number;
  durationsMs: Float64Array;
  /** Server CPU seconds (all threads, all processes). */
  cpuSeconds: number;
  /** Server CPU seconds of the event-loop threads per second of the run; 1.0 is one core fully busy. */
  mainThreadUtilisation: number;
  /** h2load CPU seconds per second of the run. */
  loadGeneratorUtilisation: number;
  /** CPU seconds per second used by everything else on the machine during the run. */
  otherUtilisation: number;
}

/** The rounds of one phase against one server, combined. */
export interface PhaseResult {
  /** Median over the rounds of successful calls per second. */
  throughput: number;
  /** Successful calls per second of each round, in round order. */
  throughputs: number[];
  /** Percentiles over the calls of all rounds, in milliseconds. */
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** Server CPU seconds per 1000 calls, over all rounds. */
  cpuSecondsPer1k: number;
  /** Medians over the rounds. */
  mainThreadUtilisation: number;
  loadGeneratorUtilisation: number;
  /** Highest over the rounds. */
  otherUtilisation: number;
  rounds: number[];
}

export interface ServerResult {
  startupSeconds: number;
  peakRssBytes: number;
  saturated: PhaseResult;
  fixedRate?: PhaseResult;
}

export interface ScenarioResult {
  scenario: string;
  title: string;
  kind: Scenario['kind'];
  service: ServerResult;
  noop?: ServerResult;
  /** The second service configuration measured in the no-op server's place (Scenario.comparison), by its name. */
  comparison?: { name: string; result: ServerResult };
  /** Offered calls per second of the fixed-rate phase. */
  rate?: number;
  /** Saturated throughput of the service relative to the no-op server (see throughputRatio). */
  throughputRatio?: number;
  /** Method and count of the decision verification, for the report. */
  verification: string;
}

export interface MeasureContext {
  folder: string;
  certificates: BenchCertificates;
  redisUrl?: string;
  shape: LoadShape;
  /** Folder for CPU profiles: with it, the service of each scenario's first saturated round runs under `node --cpu-prof`, writing to a subfolder named after the scenario. */
  profileDir?: string;
  log: (line: string) => void;
}

/** A running server and the name the report gives it. */
export interface Target {
  name: string;
  server: ServerProcess;
  address: string;
}

/** A server of a scenario: what it is started with for each round, and what its processes measured. */
interface ServerSlot {
  name: string;
  spec: Omit<ServerSpec, 'logPath'>;
  /** Start-up seconds of each process. */
  startups: number[];
  /** Highest peak RSS of any of its processes. */
  peakRssBytes: number;
}

/** Decision lines of the service's measured runs counted over every round of a scenario, against the calls h2load counted. */
interface LoggedDecisions {
  /** Whether the service's configuration logs the scenario's decision. */
  enabled: boolean;
  matching: number;
  served: number;
}

/** Runs one scenario from start to stop; throws when a decision is wrong or a server fails. */
export async function measureScenario(scenario: Scenario, context: MeasureContext): Promise<ScenarioResult> {
  const { folder, shape, log } = context;
  const serviceConfig = await writeConfig(scenario, context, `${scenario.name}-service`);
  const bodyPath = join(folder, `${scenario.name}.body`);
  const request = scenario.request(context.certificates);
  writeFileSync(bodyPath, grpcRequestBody(request));

  const slots: ServerSlot[] = [
    { name: 'service', spec: { kind: 'service', address: serviceConfig.address, configPath: serviceConfig.path, workers: scenario.workers }, startups: [], peakRssBytes: 0 },
  ];
  const service = slots[0];
  // The response that the no-op server repeats, from a service process of its own, whose start-up counts as well.
  const response = await withServer(context, service, `${scenario.name}-service-capture.log`, async (server) => {
    log(`  service ready ${server.startupSeconds.toFixed(2)} s after spawn`);
    return (await captureResponse(service.spec.address, request, scenario.expected)).response;
  });
  if (scenario.baseline) {
    const noopConfig = await writeConfig(scenario, context, `${scenario.name}-noop`);
    const responsePath = join(folder, `${scenario.name}-response.json`);
    writeFileSync(responsePath, JSON.stringify(response));
    slots.push({ name: 'no-op', spec: { kind: 'no-op', address: noopConfig.address, configPath: noopConfig.path, responsePath }, startups: [], peakRssBytes: 0 });
  }
  if (scenario.comparison) {
    const { name, config } = scenario.comparison;
    const comparisonConfig = await writeConfig(scenario, context, `${scenario.name}-${name}`, config);
    slots.push({ name, spec: { kind: 'service', address: comparisonConfig.address, configPath: comparisonConfig.path }, startups: [], peakRssBytes: 0 });
  }

  const logged: LoggedDecisions = { enabled: logsDecision(serviceConfig.path, scenario.expected), matching: 0, served: 0 };
  const measurement: Measurement = { scenario, context, bodyPath, request, service, logged };
  const saturated = await runPhase(slots, measurement, undefined);
  let rate: number | undefined;
  let fixed: Map<string, PhaseResult> | undefined;
  if (slots.length > 1) {
    rate = Math.floor(shape.rateFraction * Math.min(...[...saturated.values()].map((phase) => phase.throughput)));
    fixed = await runPhase(slots, measurement, rate);
  }
  const verification = describeVerification(scenario, logged);

  const resultOf = (slot: ServerSlot): ServerResult => ({
    // The slowest start, so that one quick start cannot hide slow ones.
    startupSeconds: Math.max(...slot.startups),
    peakRssBytes: slot.peakRssBytes,
    saturated: saturated.get(slot.name)!,
    fixedRate: fixed?.get(slot.name),
  });
  return {
    scenario: scenario.name,
    title: scenario.title,
    kind: scenario.kind,
    service: resultOf(service),
    noop: scenario.baseline ? resultOf(slots[1]) : undefined,
    comparison: scenario.comparison ? { name: scenario.comparison.name, result: resultOf(slots[slots.length - 1]) } : undefined,
    rate,
    throughputRatio: slots[1] ? throughputRatio(saturated.get('service')!, saturated.get(slots[1].name)!) : undefined,
    verification,
  };
}

/** The measurement of one scenario: what every round of it shares, and the decisions counted so far. */
interface Measurement {
  scenario: Scenario;
  context: MeasureContext;
  bodyPath: string;
  request: CheckRequestMessage;
  /** The server whose decision log is counted. */
  service: ServerSlot;
  logged: LoggedDecisions;
}

/**
 * Starts a process of a server, runs `use` on it and stops it, recording its
 * start-up time and peak RSS on the slot. The process writes its log to `logName`.
 */
async function withServer<T>(context: MeasureContext, slot: ServerSlot, logName: string, use: (server: ServerProcess) => Promise<T>, nodeOptions?: string[]): Promise<T> {
  const server = await ServerProcess.start({ ...slot.spec, logPath: join(context.folder, logName), nodeOptions });
  try {
    slot.startups.push(server.startupSeconds);
    const result = await use(server);
    slot.peakRssBytes = Math.max(slot.peakRssBytes, server.peakRssBytes());
    return result;
  } finally {
    await server.stop();
  }
}

/** Writes the scenario's configuration with fresh loopback ports. */
export async function writeConfig(
  scenario: Scenario,
  context: MeasureContext,
  name: string,
  config: Scenario['config'] = scenario.config,
): Promise<{ path: string; address: string }> {
  const configContext: ConfigContext = {
    grpcAddress: `127.0.0.1:${await freeLoopbackPort()}`,
    httpAddress: `127.0.0.1:${await freeLoopbackPort()}`,
    certificates: context.certificates,
    redisUrl: context.redisUrl,
  };
  const path = join(context.folder, `${name}.yaml`);
  writeFileSync(path, config(configContext));
  return { path, address: configContext.grpcAddress };
}

/**
 * Rounds of the same load against each server in turn; returns each server's
 * combined result by name. Every round starts each server as a new process.
 */
async function runPhase(slots: ServerSlot[], measurement: Measurement, rate: number | undefined): Promise<Map<string, PhaseResult>> {
  const { shape, log } = measurement.context;
  const runs = new Map<string, RunResult[]>(slots.map((slot) => [slot.name, []]));
  for (let index = 0; index < shape.rounds; index++) {
    for (const slot of index % 2 === 0 ? slots : [...slots].reverse()) {
      runs.get(slot.name)!.push(await runRound(slot, measurement, index, rate));
    }
  }
  const results = new Map<string, PhaseResult>();
  for (const slot of slots) {
    const phase = combine(runs.get(slot.name)!);
    results.set(slot.name, phase);
    log(`  ${slot.name.padEnd(7)} ${rate === undefined ? 'saturated' : `at ${rate}/s`}: ${describePhase(phase)}`);
  }
  return results;
}

/**
 * Runs one round of one server in a process of its own. The service first gets
 * the scenario's request until it makes the expected decision, which also uses
 * up the failure limit where the scenario needs that. Then come a warm-up, the
 * measured load and spot checks on the wire. The service's decision lines are
 * counted once the process has stopped and so written them all.
 */
async function runRound(slot: ServerSlot, measurement: Measurement, index: number, rate: number | undefined): Promise<RunResult> {
  const { scenario, context, bodyPath, request } = measurement;
  const verified = slot === measurement.service;
  const phase = rate === undefined ? 'saturated' : 'fixed';
  const logName = `${scenario.name}-${slot.name}-${phase}-${index + 1}.log`;
  // A profile covers the first saturated round's service process, so that its calls are those of one round.
  const profiled = verified && rate === undefined && index === 0 && context.profileDir !== undefined;
  const nodeOptions = profiled ? ['--cpu-prof', '--cpu-prof-dir', join(context.profileDir!, scenario.name)] : undefined;
  let logOffset = 0;
  let calls = 0;
  const run = await withServer(
    context,
    slot,
    logName,
    async (server) => {
      if (slot.spec.kind === 'service') {
        calls += (await captureResponse(slot.spec.address, request, scenario.expected)).calls;
      }
      const target: Target = { name: slot.name, server, address: slot.spec.address };
      calls += (await runOnce(target, bodyPath, { ...context.shape, durationSeconds: context.shape.warmupSeconds })).succeeded;
      // Decisions logged after this mark are the measured attempt's, so neither the warm-up's calls nor those of a
      // repeated attempt can make up for missing lines.
      const markLog = async (): Promise<void> => {
        await sleep(LOG_SETTLE_MS);
        logOffset = server.logSize();
      };
      const result = await runOnce(target, bodyPath, context.shape, rate, verified ? markLog : undefined);
      await spotCheck(slot.spec.address, request, scenario.expected, slot.name);
      calls += result.succeeded + SPOT_CHECKS;
      return result;
    },
    nodeOptions,
  );
  if (profiled) {
    context.log(`  profile: the service process of saturated round 1 (${join(context.profileDir!, scenario.name)}), ${calls} calls answered`);
  }
  if (verified && measurement.logged.enabled) {
    countRoundDecisions(measurement, join(context.folder, logName), logOffset, run, `round ${index + 1} (${phase})`);
  }
  return run;
}

/**
 * Counts the service's decision lines from `logOffset` on, in the log of a
 * process that has stopped, and adds them to the measurement. Throws when a
 * line is not the expected decision or when fewer lines than h2load's count of
 * successful calls were logged.
 */
function countRoundDecisions(measurement: Measurement, logPath: string, logOffset: number, run: RunResult, round: string): void {
  const { scenario, logged } = measurement;
  const counted = countDecisions(readFileSync(logPath).subarray(logOffset).toString('utf8'), scenario.expected);
  // The spot checks after the measured run are logged as well, and must be the expected decision.
  const measured = counted.matching - SPOT_CHECKS;
  if (counted.other > 0 || measured < run.succeeded) {
    throw new Error(
      `${scenario.name}: ${round}: h2load counted ${run.succeeded} successful calls, and the service logged ` +
        `${measured} expected decisions and ${counted.other} others; see ${logPath}`,
    );
  }
  logged.matching += measured;
  logged.served += run.succeeded;
}

/**
 * Runs the load once and reads the server's CPU and the machine's other load
 * before and after it. `beforeAttempt` runs before the run and before its repetition.
 */
export async function runOnce(target: Target, bodyPath: string, shape: LoadShape, rate?: number, beforeAttempt?: () => Promise<void>): Promise<RunResult> {
  for (let attempt = 1; ; attempt++) {
    await beforeAttempt?.();
    try {
      return await runOnceAttempt(target, bodyPath, shape, rate);
    } catch (error) {
      // NOTE: h2load 1.52 has now and then exited abnormally at the end of a `-D` run; one such run is repeated.
      if (!(error instanceof H2loadError) || attempt >= H2LOAD_ATTEMPTS) {
        throw error;
      }
      process.stderr.write(`${error.message.split('\n')[0]}; repeating the run\n`);
    }
  }
}

async function runOnceAttempt(target: Target, bodyPath: string, shape: LoadShape, rate?: number): Promise<RunResult> {
  const before = target.server.sampleCpu();
  const machineBefore = machineBusySeconds();
  const load: LoadResult = await runLoad({
    address: target.address,
    bodyPath,
    connections: shape.connections,
    streams: shape.streams,
    durationSeconds: shape.durationSeconds,
    rate,
    logPath: `${bodyPath}.h2load.tsv`,
  });
  const machineAfter = machineBusySeconds();
  const after = target.server.sampleCpu();
  if (load.failed > 0 || load.errored > 0) {
    throw new Error(`${target.name}: ${load.failed} calls failed and ${load.errored} errored under load; see ${target.server.spec.logPath}`);
  }
  const seconds = after.at - before.at;
  const serverSeconds = after.processSeconds - before.processSeconds;
  return {
    throughput: load.throughput,
    succeeded: load.succeeded,
    durationsMs: load.durationsMs,
    cpuSeconds: serverSeconds,
    mainThreadUtilisation: (after.mainThreadSeconds - before.mainThreadSeconds) / seconds,
    loadGeneratorUtilisation: load.loadGeneratorCpuSeconds / load.wallSeconds,
    otherUtilisation: Math.max(0, machineAfter - machineBefore - serverSeconds - load.loadGeneratorCpuSeconds) / seconds,
  };
}

export function combine(runs: RunResult[]): PhaseResult {
  const durations = new Float64Array(runs.reduce((sum, run) => sum + run.durationsMs.length, 0));
  let offset = 0;
  for (const run of runs) {
    durations.set(run.durationsMs, offset);
    offset += run.durationsMs.length;
  }
  durations.sort();
  const calls = runs.reduce((sum, run) => sum + run.succeeded, 0);
  return {
    throughput: median(runs.map((run) => run.throughput)),
    throughputs: runs.map((run) => run.throughput),
    p50Ms: percentile(durations, 0.5),
    p99Ms: percentile(durations, 0.99),
    p999Ms: percentile(durations, 0.999),
    cpuSecondsPer1k: (runs.reduce((sum, run) => sum + run.cpuSeconds, 0) / calls) * 1000,
    mainThreadUtilisation: median(runs.map((run) => run.mainThreadUtilisation)),
    loadGeneratorUtilisation: median(runs.map((run) => run.loadGeneratorUtilisation)),
    otherUtilisation: Math.max(...runs.map((run) => run.otherUtilisation)),
    rounds: runs.map((run) => run.succeeded),
  };
}

/**
 * Returns the service's throughput relative to the no-op server's: the median
 * of the per-round ratios, because each round ran the two servers back to back
 * and a slow minute of a shared machine then lowers both sides of one ratio.
 * Phases with different round counts fall back to the ratio of the medians.
 */
export function throughputRatio(service: PhaseResult, noop: PhaseResult): number {
  const ratios = roundRatios(service, noop);
  return ratios === undefined || ratios.length === 0 ? safeRatio(service.throughput, noop.throughput) : median(ratios);
}

/** Returns service / no-op, or 0 when the no-op server completed no call, so that no target counts as met on a broken run. */
function safeRatio(service: number, noop: number): number {
  return noop > 0 && Number.isFinite(service) ? service / noop : 0;
}

/** Returns the per-round throughput ratios, or undefined when the phases have different round counts. */
export function roundRatios(service: PhaseResult, noop: PhaseResult): number[] | undefined {
  if (service.throughputs.length !== noop.throughputs.length) {
    return undefined;
  }
  return service.throughputs.map((throughput, round) => safeRatio(throughput, noop.throughputs[round]));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Describes how the decisions were verified. h2load counts HTTP 200 as success,
 * so each round counts the service's own decision lines instead (see
 * runRound): every one must be the expected decision, and there must be one
 * for every call h2load counted. With the decision log off, only the calls
 * sent with the gRPC client after each load are checked.
 */
function describeVerification(scenario: Scenario, logged: LoggedDecisions): string {
  const { expected } = scenario;
  if (!logged.enabled) {
    return `decision log off; ${SPOT_CHECKS} calls per round checked with a gRPC client after the load`;
  }
  const marker = decisionMarkers(expected).join(' or ');
  return `${logged.matching} decisions logged during the load (h2load counted ${logged.served} answers), all ${expected.result} with ${marker}`;
}

/** Returns whether the service configuration at `path` logs the expected decision, as read by the service's own loader. */
function logsDecision(path: string, expected: ExpectedDecision): boolean {
  const { log } = loadConfigFile(path);
  const level = expected.result === 'allow' ? log.allowLevel : log.denyLevel;
  if (level === 'silent' || log.level === 'silent') {
    return false;
  }
  return pino.levels.values[level] >= pino.levels.values[log.level];
}

/** The text that a decision line of the expected decision contains: its method, or one of its deny reasons. */
function decisionMarkers(expected: ExpectedDecision): string[] {
  return expected.result === 'allow'
    ? [`"method":"${expected.method}"`]
    : [expected.reason, ...(expected.alternatives ?? []).map((alternative) => alternative.reason)].map((reason) => `"reason":"${reason}"`);
}

/** Counts the decision lines in log text that are and are not the expected decision. */
export function countDecisions(text: string, expected: ExpectedDecision): { matching: number; other: number } {
  const markers = decisionMarkers(expected);
  const result = `"result":"${expected.result}"`;
  let matching = 0;
  let other = 0;
  for (const line of text.split('\n')) {
    if (!line.includes('"result":"')) {
      continue;
    }
    if (line.includes(result) && markers.some((marker) => line.includes(marker))) {
      matching++;
    } else {
      other++;
    }
  }
  return { matching, other };
}

/**
 * Sends the request until the service makes the expected decision, and
 * returns that response, which the no-op server then repeats, with the number
 * of calls sent. Most scenarios
 * decide so on the first call; behind the failure limiter the expected 429
 * comes once the limit is used up.
 */
async function captureResponse(address: string, request: CheckRequestMessage, expected: ExpectedDecision): Promise<{ response: CheckResponseMessage; calls: number }> {
  let mismatch = '';
  for (let attempt = 1; attempt <= CAPTURE_ATTEMPTS; attempt++) {
    const response = await sendCheck(address, request);
    const problem = decisionMismatch(response, expected);
    if (problem === undefined) {
      return { response, calls: attempt };
    }
    mismatch = problem;
  }
  throw new Error(`service: ${mismatch}, still after ${CAPTURE_ATTEMPTS} calls`);
}

async function spotCheck(address: string, request: CheckRequestMessage, expected: ExpectedDecision, who: string): Promise<void> {
  const accepted = [expected, ...(expected.alternatives ?? []).map((alternative) => ({ ...expected, ...alternative }))];
  for (let index = 0; index < SPOT_CHECKS; index++) {
    const response = await sendCheck(address, request);
    const mismatches = accepted.map((decision) => decisionMismatch(response, decision));
    if (mismatches.every((mismatch) => mismatch !== undefined)) {
      throw new Error(`${who}: ${mismatches[0]}`);
    }
  }
}

export function describePhase(phase: PhaseResult): string {
  return (
    `${Math.round(phase.throughput)} calls/s, p50 ${phase.p50Ms.toFixed(2)} ms, p99 ${phase.p99Ms.toFixed(2)} ms, ` +
    `event loop ${(phase.mainThreadUtilisation * 100).toFixed(0)}%, h2load ${(phase.loadGeneratorUtilisation * 100).toFixed(0)}%, ` +
    `other load up to ${(phase.otherUtilisation * 100).toFixed(0)}% of a core`
  );
}
