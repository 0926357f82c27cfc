/**
 * Reading the benchmarks' settings from the environment (or a flag): a setting that is not a
 * whole number within its bounds stops the benchmark before it runs, with a message that names
 * the setting and the value received, instead of running with NaN lanes or zero runs.
 */

/** The environment a benchmark reads, `process.env` unless a caller passes its own. */
export type BenchEnv = Readonly<Record<string, string | undefined>>;

/** Bounds of a count setting, both inclusive: `min` defaults to 1, `max` to the safe range. */
export interface CountBounds {
  readonly min?: number;
  readonly max?: number;
}

/**
 * The integer `text` writes, as the setting `name`.
 *
 * @throws {RangeError} when `text` is not written as a whole number (digits only) or lies
 *   outside `[min, max]`; the message names the setting, the bounds and the value received.
 */
export function countSetting(
  name: string,
  text: string,
  { min = 1, max = Number.MAX_SAFE_INTEGER }: CountBounds = {},
): number {
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/**
 * The integer `name` holds in `env` (see {@link countSetting}), or `fallback` when it is unset
 * or empty.
 */
export function integerFromEnv(
  name: string,
  fallback: number,
  { env = process.env, ...bounds }: CountBounds & { env?: BenchEnv } = {},
): number {
  const text = env[name];
  return text === undefined || text === '' ? fallback : countSetting(name, text, bounds);
}
