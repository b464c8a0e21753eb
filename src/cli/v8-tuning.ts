import { setFlagsFromString } from 'node:v8';

/**
 * V8 flags that the serving process sets before it handles a Check. V8 caps
 * the bytecode it inlines into one optimized function at 920 bytes in all
 * (Node.js 20). Under `--trace-turbo-inlining`, the batch loop that decides
 * Checks and sends their responses spent that budget on grpc-js's send path and inlined
 * neither the decision log nor the metrics. With 4,600 bytes it inlined both.
 * In 8 alternating rounds of `token-allow`, the service's throughput rose by
 * 5.4% and the no-op server's, which sets the same flag, by 5.0% (medians,
 * docs/benchmarks.md).
 */
export const SERVE_V8_FLAGS: readonly string[] = ['--max-inlined-bytecode-size-cumulative=4600'];

/**
 * Sets each flag of SERVE_V8_FLAGS that the process was not started with,
 * so `node --max-inlined-bytecode-size-cumulative=N` keeps the operator's value.
 * Returns the flags that it set. V8 reads these limits when it optimizes a
 * function, so setting them at start applies to every function the Check path runs.
 */
export function applyServeV8Flags(execArgv: readonly string[] = process.execArgv): string[] {
  const applied: string[] = [];
  for (const flag of SERVE_V8_FLAGS) {
    const name = v8FlagName(flag);
    if (execArgv.some((argument) => v8FlagName(argument) === name)) {
      continue;
    }
    setFlagsFromString(flag);
    applied.push(flag);
  }
  return applied;
}

/**
 * Returns a flag's name without its value and leading dashes, with `_` read as `-`.
 * V8 accepts `-name`, `--name` and `--na_me` alike, so each names the same flag.
 */
function v8FlagName(argument: string): string {
  return argument.split('=')[0].replace(/^--?/, '').replaceAll('_', '-');
}
