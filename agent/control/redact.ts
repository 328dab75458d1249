/**
 * A configuration with every secret taken out, for answers that leave the gateway
 * (`config/get`): values of keys that name a password, key, token or secret are replaced, and
 * every URL loses its user name, password and the values of its query parameters that look
 * like credentials. Paths of files holding secrets (`passwordFile`, `keyFile`, …) and
 * credential names stay: they say where a secret is, not what it is.
 */
import { redactUrl } from '../../drivers/network/url-text.js';

export const REDACTED = '[redacted]';

/** Keys whose value is a secret itself (not a file name: those end in File/Credential/Dir). */
const SECRET_KEY = /(password|passwd|secret|token|apikey|api_key|authorization|auth|key)$/i;

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
