/**
 * A configuration with every secret taken out, for answers that leave the gateway
 * (`config/get`): values of keys that name a password, key, token or secret are replaced, and
 * every URL loses its user name, password and the values of its query parameters that look
 * like credentials. Paths of files holding secrets (`passwordFile`, `keyFile`, …) and
 * credential names stay: they say where a secret is, not what it is.
 */
export const REDACTED = '[redacted]';
/** The same inside a URL, where brackets would be percent-encoded. */
const REDACTED_IN_URL = 'REDACTED';

/** Keys whose value is a secret itself (not a file name: those end in File/Credential/Dir). */
const SECRET_KEY = /(password|passwd|secret|token|apikey|api_key|authorization|auth|key)$/i;
const SECRET_PARAM = /(password|passwd|pass|secret|token|key|sig|signature|auth|credential)/i;

export function redactSecrets(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSecrets(v, k)]));
  }
  if (key !== '' && SECRET_KEY.test(key) && value !== undefined && value !== null) {
    return REDACTED;
  }
  if (typeof value === 'string') return redactUrl(value);
  return value;
}

/** A URL without credentials; any other string as it is. */
export function redactUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || !URL.canParse(text)) return text;
  const url = new URL(text);
  let changed = false;
  if (url.username !== '' || url.password !== '') {
    url.username = url.username === '' ? '' : REDACTED_IN_URL;
    url.password = url.password === '' ? '' : REDACTED_IN_URL;
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) {
      url.searchParams.set(name, REDACTED_IN_URL);
      changed = true;
    }
  }
  return changed ? url.toString() : text;
}
