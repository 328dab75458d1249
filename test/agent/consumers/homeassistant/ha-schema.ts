/** The Home Assistant discovery JSON Schema (written from HA's docs), compiled with ajv. */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';

const url = new URL(
  '../../../fixtures/homeassistant-device-discovery.schema.json',
  import.meta.url,
);
const validate = new Ajv({ allErrors: true, strict: false }).compile(
  JSON.parse(readFileSync(url, 'utf8')) as object,
);

/** '' when `payload` is a valid device discovery message, else ajv's errors as JSON. */
export function discoveryErrors(payload: unknown): string {
  return validate(payload) ? '' : JSON.stringify(validate.errors);
}
