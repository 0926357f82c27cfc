/**
 * Reading the benchmarks' settings from the environment: a setting that is not a whole number
 * within its bounds stops the benchmark before it runs, with a message that names the variable
 * and the value received, instead of running with NaN lanes or zero runs.
 */

/** The environment a benchmark reads, `process.env` unless a caller passes its own. */
export type BenchEnv = Readonly<Record<string, string | undefined>>;

/**
 * The integer `name` holds in `env`, or `fallback` when it is unset or empty.
 *
 * @throws {RangeError} when the value is not written as a whole number (digits only) or lies
 *   outside `[min, max]`; the message names the variable, the bounds and the value received.
 */
export function integerFromEnv(
  name: string,
  fallback: number,
  {
    min = 1,
    max = Number.MAX_SAFE_INTEGER,
    env = process.env,
  }: { min?: number; max?: number; env?: BenchEnv } = {},
): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}
