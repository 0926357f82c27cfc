const MAX_LENGTH = 120;

/**
 * Renders any value for an error message: short, never throwing (circular objects, BigInt,
 * symbols and huge values included).
 */
export function describeValue(value: unknown): string {
  let text: string;
  if (value === undefined) return 'undefined';
  if (typeof value === 'bigint') return `${value}n`;
  // JSON.stringify would print NaN and ±Infinity as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'symbol' || typeof value === 'function') return String(value);
  try {
    text = JSON.stringify(value) ?? Object.prototype.toString.call(value);
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH)}… (${text.length} chars)` : text;
}
