/** The shipped JSON Schemas, compiled with ajv, for tests that validate payloads. */
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';

function load(name: string): ValidateFunction {
  const url = new URL(`../../../docs/schemas/${name}`, import.meta.url);
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(JSON.parse(readFileSync(url, 'utf8')) as object);
}

export const validateTelemetry = load('telemetry-1.schema.json');
export const validateStatus = load('status.schema.json');
export const validateHealth = load('health.schema.json');

export function schemaErrors(validate: ValidateFunction, value: unknown): string {
  return validate(value) ? '' : JSON.stringify(validate.errors);
}
