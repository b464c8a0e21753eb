/**
 * Settings and shared arbitraries for the property-based tests (`test/property-*.test.ts`).
 *
 * `FUZZ_RUNS` sets the number of cases per property: unset, `npm test` runs `DEFAULT_FUZZ_RUNS`,
 * and `npm run fuzz` sets 100000. fast-check prints the seed and path of a failure; run again with
 * `FUZZ_SEED=<seed> FUZZ_PATH=<path>` to replay exactly that case.
 */
import fc from 'fast-check';

/** Cases per property when `FUZZ_RUNS` is unset, small enough to keep `npm test` fast. */
export const DEFAULT_FUZZ_RUNS = 300;

/** Minimum number of cases of a property that sends each case over gRPC, however small `FUZZ_RUNS` is. */
export const MIN_SERVICE_RUNS = 200;

function integerFromEnvironment(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') {
    return undefined;
  }
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new Error(`${name} must be an integer, got '${text}'`);
  }
  return Number(text);
}

const configuredRuns = integerFromEnvironment('FUZZ_RUNS');
if (configuredRuns !== undefined && configuredRuns < 1) {
  throw new Error(`FUZZ_RUNS must be at least 1, got ${configuredRuns}`);
}

/** Cases per property: `FUZZ_RUNS`, or `DEFAULT_FUZZ_RUNS`. */
export const numRuns = configuredRuns ?? DEFAULT_FUZZ_RUNS;

/** Cases for a property that makes one gRPC call per case: a tenth of `numRuns`, at least `MIN_SERVICE_RUNS`. */
export const serviceRuns = Math.max(MIN_SERVICE_RUNS, Math.floor(numRuns / 10));

const seed = integerFromEnvironment('FUZZ_SEED');
const replayPath = process.env.FUZZ_PATH || undefined;

/** Whether `FUZZ_PATH` replays a single case, which makes checks on counts over many cases meaningless. */
export const replaying = replayPath !== undefined;

/** fast-check parameters for `runs` cases, with the replay seed and path from the environment when set. */
export function fuzzParameters<T>(runs: number = numRuns): fc.Parameters<T> {
  return { numRuns: runs, ...(seed === undefined ? {} : { seed }), ...(replayPath === undefined ? {} : { path: replayPath }) };
}

/** Runs `action` and rethrows anything that is not an instance of one of `allowed`, so fast-check reports it. */
export function onlyThrows(allowed: ReadonlyArray<abstract new (...args: never[]) => Error>, action: () => unknown): void {
  try {
    action();
  } catch (error) {
    if (!allowed.some((type) => error instanceof type)) {
      throw error;
    }
  }
}

/** One edit of a string: insert `text` at `position`, delete `length` characters there, or both (replace). */
export interface StringEdit {
  position: number;
  length: number;
  text: string;
}

/** Applies edits in order. Positions wrap around the current length, so every edit lands inside the string. */
export function applyEdits(input: string, edits: readonly StringEdit[]): string {
  let output = input;
  for (const edit of edits) {
    const position = edit.position % (output.length + 1);
    output = output.slice(0, position) + edit.text + output.slice(position + edit.length);
  }
  return output;
}

/** 1 to `maxEdits` edits whose inserted text comes from `text`. */
export function stringEdits(text: fc.Arbitrary<string>, maxEdits = 4): fc.Arbitrary<StringEdit[]> {
  return fc.array(
    fc.record({ position: fc.nat({ max: 100_000 }), length: fc.oneof(fc.constant(0), fc.nat({ max: 3 })), text }),
    { minLength: 1, maxLength: maxEdits },
  );
}

/** Strings with code points anywhere in Unicode, lone surrogates included. */
export function anyString(maxLength = 200): fc.Arbitrary<string> {
  const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), loneSurrogate), maxLength }),
  );
}

/** Strings made of `tokens`, for input that is close to a grammar but not random noise. */
export function tokenString(tokens: readonly string[], maxTokens = 40): fc.Arbitrary<string> {
  return fc.array(fc.constantFrom(...tokens), { maxLength: maxTokens }).map((parts) => parts.join(''));
}
