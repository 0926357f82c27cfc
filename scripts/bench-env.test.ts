import { describe, expect, it } from 'vitest';
import { countSetting, integerFromEnv } from './bench-env.js';

describe('integerFromEnv', () => {
  it('reads a whole number, and the fallback when the variable is unset or empty', () => {
    expect(integerFromEnv('RUNS', 3, { env: { RUNS: '7' } })).toBe(7);
    expect(integerFromEnv('RUNS', 3, { env: {} })).toBe(3);
    expect(integerFromEnv('RUNS', 3, { env: { RUNS: '' } })).toBe(3);
    expect(integerFromEnv('REFERENCE', 1, { min: 0, env: { REFERENCE: '0' } })).toBe(0);
  });

  it.each(['abc', '1.5', '-2', ' 4', '1e3', '0', '9007199254740993'])(
    'refuses %j, naming the variable and the value',
    (text) => {
      expect(() => integerFromEnv('CONCURRENCY', 128, { env: { CONCURRENCY: text } })).toThrow(
        new RangeError(
          `CONCURRENCY must be an integer in 1..${Number.MAX_SAFE_INTEGER}, got ${JSON.stringify(text)}`,
        ),
      );
    },
  );

  it('refuses a value above its maximum', () => {
    expect(() => integerFromEnv('RUNS', 3, { max: 100, env: { RUNS: '101' } })).toThrow(
      'RUNS must be an integer in 1..100, got "101"',
    );
  });

  it('checks a flag as it checks a variable', () => {
    expect(countSetting('runs', '5')).toBe(5);
    expect(() => countSetting('hosts', '1e3')).toThrow(
      `hosts must be an integer in 1..${Number.MAX_SAFE_INTEGER}, got "1e3"`,
    );
  });
});
