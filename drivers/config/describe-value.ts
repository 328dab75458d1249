/**
 * How a config value is shown inside a one-line problem: short, printable, never the whole of
 * a large or deeply nested value (a problem line echoes what the user wrote, not a dump).
 */
const MAX_SHOWN_CHARS = 60;

/** A string in double quotes with control characters escaped, cut after 60 characters. */
export function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : String(describeValue(value));
  const cut = text.length > MAX_SHOWN_CHARS ? `${text.slice(0, MAX_SHOWN_CHARS)}…` : text;
  return JSON.stringify(cut);
}

/** "null", "a list", "an object", a quoted string or the number. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  return typeof value;
}

/** A scalar as text for a message key ("port /dev/ttyUSB0"), anything else by its kind. */
export function scalarText(value: unknown): string {
  if (typeof value === 'string') {
    return value.length > MAX_SHOWN_CHARS ? `${value.slice(0, MAX_SHOWN_CHARS)}…` : value;
  }
  if (value === undefined || typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  return describeValue(value);
}
