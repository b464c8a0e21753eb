/**
 * `npm run bench`: measures the service against a no-op Check server on the
 * same gRPC library, under the same load from h2load, scenario by scenario.
 * docs/benchmarks.md explains the method and records a full run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makeCertificates } from './certificates.js';
import { requireH2load } from './h2load.js';
import { measureScenario, type LoadShape, type ScenarioResult } from './measure.js';
import { BenchRedis, runImport, writeImportFile } from './redis.js';
import { printReport, type RedisImportResult } from './report.js';
import { measureSaturation, type SaturationStep } from './saturation.js';
import { CONTROLLER_ID, SCENARIOS, type Scenario } from './scenarios.js';
import { ServerProcess } from './server-process.js';
import { freeLoopbackPort, MissingToolError } from './tools.js';

const USAGE = `usage: npm run bench -- [options]

Options:
  --quick                 short smoke run: one 2 s round per phase, 20,000 Redis targets
  --scenario LIST         comma-separated scenario names or prefixes, e.g. token,cert; a full name selects only that scenario (default: all)
  --list                  print the scenarios and exit
  --connections N         HTTP/2 connections of the load generator (default 4)
  --streams N             concurrent calls per connection (default 16)
  --duration SECONDS      length of one measured round (default 5, quick 2)
  --rounds N              rounds per phase; service and no-op take turns (default 3, quick 1)
  --redis-targets N       targets imported for the Redis scenarios (default 1000000, quick 20000)
  --no-saturation-check   skip the load ramp that shows the server is saturated
  --profile DIR           run the service with node --cpu-prof and write its profiles to DIR
  --json FILE             also write every figure as JSON to FILE
  --keep                  keep the temporary folder with configurations and server logs
`;

interface BenchOptions {
  quick: boolean;
  scenarios: Scenario[];
  shape: LoadShape;
  redisTargets: number;
  saturationCheck: boolean;
  profileDir?: string;
  jsonPath?: string;
  keep: boolean;
}

function parseOptions(argv: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      scenario: { type: 'string' },
      list: { type: 'boolean' },
      connections: { type: 'string' },
      streams: { type: 'string' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      'redis-targets': { type: 'string' },
      'no-saturation-check': { type: 'boolean' },
      profile: { type: 'string' },
      json: { type: 'string' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  if (values.list) {
    for (const scenario of SCENARIOS) {
      process.stdout.write(`${scenario.name.padEnd(20)} ${scenario.title}\n`);
    }
    return undefined;
  }
  const quick = values.quick ?? false;
  const selected = selectScenarios(values.scenario);
  const duration = positiveNumber(values.duration, '--duration', quick ? 2 : 5);
  return {
    quick,
    scenarios: selected,
    shape: {
      connections: positiveInteger(values.connections, '--connections', 4),
      streams: positiveInteger(values.streams, '--streams', 16),
      warmupSeconds: quick ? 1 : 2,
      durationSeconds: duration,
      rounds: positiveInteger(values.rounds, '--rounds', quick ? 1 : 3),
      rateFraction: 0.5,
    },
    redisTargets: positiveInteger(values['redis-targets'], '--redis-targets', quick ? 20_000 : 1_000_000),
    saturationCheck: !(values['no-saturation-check'] ?? false),
    profileDir: values.profile === undefined ? undefined : resolve(values.profile),
    jsonPath: values.json,
    keep: values.keep ?? false,
  };
}

function selectScenarios(filter: string | undefined): Scenario[] {
  if (filter === undefined || filter === '') {
    return [...SCENARIOS];
  }
  const wanted = filter.split(',').map((part) => part.trim()).filter((part) => part !== '');
  // A full name selects that scenario alone; anything else is a prefix.
  const names = new Set(SCENARIOS.map((scenario) => scenario.name));
  const selected = SCENARIOS.filter((scenario) => wanted.some((part) => (names.has(part) ? scenario.name === part : scenario.name.startsWith(part))));
  if (selected.length === 0) {
    throw new Error(`--scenario ${filter} matches no scenario; run with --list to see the names`);
  }
  return selected;
}

function positiveInteger(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) {
    return fallback;
  }
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) {
    throw new Error(`${flag} must be a positive integer, got "${value}"`);
  }
  return parsed;
}

function positiveNumber(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) {
    return fallback;
  }
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) {
    throw new Error(`${flag} must be a positive number of seconds, got "${value}"`);
  }
  return parsed;
}

/** CPU model, cores and versions, printed first so a report names its machine. */
function machineDescription(): string[] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const h2load = execFileSync('h2load', ['--version'], { encoding: 'utf8' }).trim();
  return [
    `machine: ${availableParallelism()} cores, ${model}, Linux ${release()}`,
    `node ${process.version}, ${h2load}`,
  ];
}

async function importRedisTargets(redis: BenchRedis, folder: string, count: number, log: (line: string) => void): Promise<RedisImportResult> {
  const configPath = join(folder, 'import-config.yaml');
  const importPath = join(folder, 'import.yaml');
  writeFileSync(configPath, `store: { type: redis, redis: { url: "${redis.url}" } }\n`);
  await writeImportFile(importPath, count);
  const before = await redis.usedMemoryBytes();
  log(`importing ${count} targets into Redis with \`hawkbit-ext-authz import\``);
  const seconds = await runImport(configPath, importPath);
  const after = await redis.usedMemoryBytes();
  rmSync(importPath, { force: true });
  return { targets: count, seconds, usedMemoryBeforeBytes: before, usedMemoryAfterBytes: after };
}

/** An error in the command line, reported as its message alone with a pointer to the help. */
class UsageError extends Error {}

async function main(): Promise<number> {
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (!options) {
    return 0;
  }
  requireH2load();
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const machine = machineDescription();
  machine.forEach(log);
  log(
    `load: h2load, 1 thread, ${options.shape.connections} connections x ${options.shape.streams} streams, ` +
      `${options.shape.warmupSeconds} s warm-up, ${options.shape.rounds} x ${options.shape.durationSeconds} s per phase and server`,
  );

  const folder = mkdtempSync(join(tmpdir(), 'hawkbit-ext-authz-bench-'));
  let redis: BenchRedis | undefined;
  // A signal to this process alone (not to its group, as Ctrl-C sends) would otherwise leave the servers and Redis running.
  const interrupt = (signal: NodeJS.Signals): void => {
    process.stderr.write(`${signal}: stopping the servers and Redis\n`);
    void Promise.allSettled([ServerProcess.stopAll(), redis?.stop()]).then(() => {
      if (!options.keep) {
        rmSync(folder, { recursive: true, force: true });
      }
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGTERM', interrupt);
  process.once('SIGINT', interrupt);
  try {
    const certificates = makeCertificates(folder, CONTROLLER_ID);
    let redisImport: RedisImportResult | undefined;
    if (options.scenarios.some((scenario) => scenario.redisTargets)) {
      redis = await BenchRedis.start(await freeLoopbackPort());
      redisImport = await importRedisTargets(redis, folder, options.redisTargets, log);
    }
    if (options.profileDir) {
      mkdirSync(options.profileDir, { recursive: true });
    }
    const context = {
      folder,
      certificates,
      redisUrl: redis?.url,
      shape: options.shape,
      profileDir: options.profileDir,
      log,
    };

    let saturation: SaturationStep[] | undefined;
    const rampScenario = options.scenarios.find((scenario) => scenario.name === 'token-allow');
    if (options.saturationCheck && rampScenario) {
      log('\nsaturation check: token-allow under growing load');
      saturation = await measureSaturation(rampScenario, context, options.quick ? 1 : 3);
    }

    const results: ScenarioResult[] = [];
    for (const scenario of options.scenarios) {
      log(`\n${scenario.name}: ${scenario.title}`);
      results.push(await measureScenario(scenario, context));
    }

    log('');
    printReport({ machine, shape: options.shape, results, saturation, redisImport }, log);
    if (options.jsonPath) {
      writeFileSync(options.jsonPath, `${JSON.stringify({ machine, shape: options.shape, saturation, redisImport, results }, null, 2)}\n`);
    }
    return 0;
  } finally {
    await redis?.stop();
    if (options.keep) {
      log(`configurations and server logs kept in ${folder}`);
    } else {
      rmSync(folder, { recursive: true, force: true });
    }
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${error.message}\nrun \`npm run bench -- --help\` for the options\n`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof MissingToolError) {
      process.stderr.write(`error: ${error.message}\n`);
    } else {
      process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    process.exitCode = 1;
  },
);
