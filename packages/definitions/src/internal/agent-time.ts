import { formatTimestamp } from '@dagops/engine';

/**
 * Formats epoch milliseconds the way OCP's `HostAgentProcess` shows times: ISO-8601 to the
 * second with the UTC offset (`2021-08-03T15:02:44+08:00`), unlike task times, which carry
 * milliseconds.
 */
export function formatAgentTime(epochMs: number, utcOffsetMinutes?: number): string {
  return formatTimestamp(Math.floor(epochMs / 1000) * 1000, utcOffsetMinutes).replace(
    /\.\d{3}(?=[+-])/,
    '',
  );
}
