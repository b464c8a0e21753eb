/**
 * Summarises a V8 CPU profile (`node --cpu-prof`): the functions with the
 * most self time, and the project's own functions by inclusive time.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--calls N]
 *
 * `--calls` takes the number of calls the process completed while it was
 * profiled. With it, times are shown in microseconds per call instead of
 * shares of the busy time, so profiles of two servers compare line by line.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface FunctionTime {
  name: string;
  selfMs: number;
  totalMs: number;
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, calls: { type: 'string' } } });
if (positionals.length !== 1) {
  process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--calls N]\n');
  process.exit(2);
}
const top = Number(values.top ?? 25);
const calls = values.calls === undefined ? undefined : Number(values.calls);
// A reader such as `head` may close the pipe early; that is not an error.
process.stdout.on('error', () => process.exit(0));
const profile = JSON.parse(readFileSync(positionals[0], 'utf8')) as CpuProfile;

// Self time per node: each sample's time delta goes to the node that was on top of the stack.
const selfMs = new Map<number, number>();
for (let index = 0; index < profile.samples.length; index++) {
  const id = profile.samples[index];
  selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
}
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const totalMsById = new Map<number, number>();
const totalOf = (node: ProfileNode): number => {
  let total = selfMs.get(node.id) ?? 0;
  for (const child of node.children ?? []) {
    total += totalOf(byId.get(child) as ProfileNode);
  }
  totalMsById.set(node.id, total);
  return total;
};
const root = profile.nodes[0];
const profileMs = totalOf(root);

const functions = new Map<string, FunctionTime>();
// Inclusive time counts a function once per stack, so recursion does not count twice.
const visit = (node: ProfileNode, onStack: Set<string>): void => {
  const name = describeFrame(node);
  const entry = functions.get(name) ?? { name, selfMs: 0, totalMs: 0 };
  entry.selfMs += selfMs.get(node.id) ?? 0;
  if (!onStack.has(name)) {
    entry.totalMs += totalMsById.get(node.id) ?? 0;
  }
  functions.set(name, entry);
  const next = new Set(onStack).add(name);
  for (const child of node.children ?? []) {
    visit(byId.get(child) as ProfileNode, next);
  }
};
visit(root, new Set());

const idleMs = [...functions.values()].filter((entry) => entry.name.startsWith('(idle)')).reduce((sum, entry) => sum + entry.selfMs, 0);
const busyMs = profileMs - idleMs;
process.stdout.write(`profile: ${(profileMs / 1000).toFixed(1)} s, busy ${(busyMs / 1000).toFixed(1)} s`);
process.stdout.write(calls === undefined ? '\n\n' : `, ${((busyMs * 1000) / calls).toFixed(1)} µs per call\n\n`);
const unit = calls === undefined ? 'as a share of busy time' : 'in µs per call';
const busyFunctions = [...functions.values()].filter((entry) => !entry.name.startsWith('(idle)') && !entry.name.startsWith('(root)'));
print(`self time, ${unit}`, busyFunctions.sort((a, b) => b.selfMs - a.selfMs).slice(0, top), (entry) => entry.selfMs);
print(
  `inclusive time of the functions in src/ and node_modules/, ${unit}`,
  busyFunctions.filter((entry) => entry.name.includes(' ')).sort((a, b) => b.totalMs - a.totalMs).slice(0, top),
  (entry) => entry.totalMs,
);

function print(title: string, entries: FunctionTime[], value: (entry: FunctionTime) => number): void {
  process.stdout.write(`${title}:\n`);
  for (const entry of entries) {
    const shown = calls === undefined ? `${((value(entry) / busyMs) * 100).toFixed(1)}%` : ((value(entry) * 1000) / calls).toFixed(2);
    process.stdout.write(`  ${shown.padStart(6)}  ${entry.name}\n`);
  }
  process.stdout.write('\n');
}

function describeFrame(node: ProfileNode): string {
  const frame = node.callFrame;
  const name = frame.functionName || '(anonymous)';
  if (frame.url === '') {
    return name;
  }
  if (frame.url.startsWith('node:')) {
    return `${name} [${frame.url}:${frame.lineNumber + 1}]`;
  }
  const path = frame.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '');
  return `${name} ${path}:${frame.lineNumber + 1}`;
}
