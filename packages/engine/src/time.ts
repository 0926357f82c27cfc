function pad(value: number, width = 2): string {
  return String(value).padStart(width, '0');
}

/**
 * Formats epoch milliseconds as ISO-8601 with milliseconds and a UTC offset, the way OCP does
 * (`2021-09-03T14:27:59.687+08:00`).
 *
 * @param offsetMinutes minutes east of UTC; defaults to this process's offset at that instant.
 */
export function formatTimestamp(epochMs: number, offsetMinutes?: number): string {
  const offset = offsetMinutes ?? -new Date(epochMs).getTimezoneOffset();
  const local = new Date(epochMs + offset * 60_000);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return (
    `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}` +
    `T${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}` +
    `.${pad(local.getUTCMilliseconds(), 3)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}
