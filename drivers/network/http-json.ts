/**
 * HTTP JSON sensor: GET a URL, take the number at a JSON path (json-path.ts), e.g. a
 * Shelly / Tasmota / ESPHome device or a vendor gateway exposing readings as JSON.
 *
 * Facts: HTTP/1.1 GET with keep-alive (http-client.ts: one shared Agent, up to 1024 sockets
 * per host, reused between samples); `Accept: application/json`. A 2xx reply whose body parses
 * as JSON and holds a finite number (or a numeric string) at the path is a reading.
 *
 * Errors, each a SensorError naming what was wrong: non-2xx status, body that is not JSON,
 * path missing, value not numeric → PROTOCOL; no answer before the round's signal aborts →
 * TIMEOUT; connection refused/reset → DISCONNECTED. An invalid path in the config fails
 * every round with PROTOCOL (and says so) rather than crashing the agent.
 */
import { z } from 'zod';
import { quantity, sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor } from '../descriptor.js';
import { SensorError, type Driver, type Measurement } from '../types.js';
import { sharedHttpClient, type HttpJsonClient } from './http-client.js';
import { numericValue, parseJsonPath, valueAtPath, type JsonPath } from './json-path.js';
import { redactUrl } from './url-text.js';

export type HttpJsonConfig = Pick<z.output<typeof httpJsonSchema>, 'url' | 'path' | 'quantity'>;

/**
 * The reading in a response, or a PROTOCOL SensorError saying why there is none; `url` as the
 * message shows it (without credentials).
 */
export function readingFromResponse(
  res: { status: number; body: string },
  path: JsonPath,
  pathText: string,
  url: string,
): number {
  if (res.status < 200 || res.status > 299) {
    const excerpt = res.body.slice(0, 80).replace(/\s+/g, ' ').trim();
    throw new SensorError(
      'PROTOCOL',
      `HTTP ${res.status} from ${url}${excerpt ? `: ${excerpt}` : ''}`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(res.body);
  } catch (err) {
    throw new SensorError(
      'PROTOCOL',
      `body from ${url} is not JSON (${(err as Error).message}): ${JSON.stringify(res.body.slice(0, 40))}`,
      { cause: err },
    );
  }
  const found = valueAtPath(doc, path);
  if (!found.found)
    throw new SensorError(
      'PROTOCOL',
      `path "${pathText}" not in body from ${url}: ${found.reason}`,
    );
  const n = numericValue(found.value);
  if (n === undefined) {
    throw new SensorError(
      'PROTOCOL',
      `value at "${pathText}" from ${url} is not a number: ${JSON.stringify(found.value)?.slice(0, 40) ?? 'undefined'}`,
    );
  }
  return n;
}

export function createHttpJson(
  config: HttpJsonConfig,
  client: HttpJsonClient = sharedHttpClient(),
): Driver {
  // Errors reach health reports and answers: the URL in them carries no credentials.
  const shownUrl = redactUrl(config.url);
  let path: JsonPath | undefined;
  let pathError: string | undefined;
  try {
    path = parseJsonPath(config.path);
  } catch (err) {
    pathError = (err as Error).message;
  }

  return {
    kind: 'http-json',
    quantities: [config.quantity],
    async measure(signal: AbortSignal): Promise<Measurement[]> {
      if (!path) throw new SensorError('PROTOCOL', `config: ${pathError ?? 'invalid path'}`);
      const res = await client.get(config.url, signal);
      return [
        {
          quantity: config.quantity,
          value: readingFromResponse(res, path, config.path, shownUrl),
        },
      ];
    },
  };
}

const httpJsonSchema = z.strictObject({
  ...sensorKeys,
  driver: z.literal('http-json'),
  url: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .describe('URL answering with a JSON body.'),
  path: z
    .string()
    .min(1)
    .superRefine((p, ctx) => {
      try {
        parseJsonPath(p);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .describe(
      'Dotted path to the number in the JSON body, e.g. "data.temperature" or "sensors[0].t".',
    ),
  quantity: quantity.default('temperature'),
});

/** Any number of sensors may read one URL: no place to clash on. */
export const httpJson: DriverDescriptor<typeof httpJsonSchema> = {
  name: 'http-json',
  schema: httpJsonSchema,
  create: (config, seams) => createHttpJson(config, seams.http),
};
