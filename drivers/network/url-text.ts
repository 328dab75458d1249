/**
 * A URL as it may be shown — in a sensor's error (health, `read` answers, logs) or in an
 * answer — without the user name, password and credential-like query values it may carry.
 */
/** What stands for a value taken out (brackets would be percent-encoded in a URL). */
const REDACTED_IN_URL = 'REDACTED';
const SECRET_PARAM = /(password|passwd|pass|secret|token|key|sig|signature|auth|credential)/i;

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
