import { describe, expect, it } from 'vitest';
import {
  assembleTelemetry,
  healthPayload,
  offlineStatus,
  onlineStatus,
} from '../../../agent/publish/payload.js';
import { gatewayTopics, parseGatewayTopic } from '../../../agent/publish/topics.js';
import { windowBody } from './bodies.js';
import { sampleHealth } from './health-sample.js';
import { schemaErrors, validateHealth, validateStatus, validateTelemetry } from './schemas.js';

const info = {
  gateway: 'gw-1',
  version: '0.1.0',
  startedAt: 1_700_000_000_000,
  sensors: ['a', 'b'],
};

describe('assembleTelemetry', () => {
  it('puts the header before the body fields, byte for byte, without re-encoding the body', () => {
    const body = windowBody(3, { readings: 2 });
    const out = assembleTelemetry('gw-1', 42, 1234, body);
    const parsed = JSON.parse(out.toString('utf8')) as Record<string, unknown>;
    expect(parsed).toEqual({
      schema: 'edge-agent/telemetry/1',
      gateway: 'gw-1',
      seq: 42,
      createdAt: 1234,
      ...(JSON.parse(new TextDecoder().decode(body)) as object),
    });
    // The body's bytes after `{` appear unchanged at the end.
    expect(out.subarray(out.length - (body.length - 1)).equals(Buffer.from(body.subarray(1)))).toBe(
      true,
    );
    expect(schemaErrors(validateTelemetry, parsed)).toBe('');
  });

  it('escapes the gateway id and rejects a body that is not an object', () => {
    const out = assembleTelemetry('a"b', 1, 0, new TextEncoder().encode(' {"windows":[]}'));
    expect((JSON.parse(out.toString()) as { gateway: string }).gateway).toBe('a"b');
    expect(() => assembleTelemetry('gw', 1, 0, new TextEncoder().encode('[1]'))).toThrow(/object/);
  });

  it('a part of a split batch carries part and parts after its seq, and the schema wants both or neither', () => {
    const out = assembleTelemetry('gw', 9, 5, windowBody(0), undefined, { part: 2, parts: 3 });
    expect(out.toString()).toMatch(
      /^\{"schema":"edge-agent\/telemetry\/1","gateway":"gw","seq":9,"part":2,"parts":3,"createdAt":5,/,
    );
    const parsed = JSON.parse(out.toString()) as Record<string, unknown>;
    expect(schemaErrors(validateTelemetry, parsed)).toBe('');
    const { parts: _parts, ...partOnly } = parsed;
    expect(validateTelemetry(partOnly)).toBe(false);
    expect(validateTelemetry({ ...parsed, part: 0 })).toBe(false);
  });

  it('produces payloads the telemetry schema rejects when a required field is wrong', () => {
    const ok = JSON.parse(assembleTelemetry('gw', 1, 5, windowBody(0)).toString()) as Record<
      string,
      unknown
    >;
    expect(validateTelemetry({ ...ok, seq: 0 })).toBe(false);
    expect(validateTelemetry({ ...ok, windows: [{ sensor: 'x' }] })).toBe(false);
  });
});

describe('status and health payloads', () => {
  it('validate against the shipped schemas', () => {
    const online = JSON.parse(onlineStatus(info, 5).toString()) as Record<string, unknown>;
    const offline = JSON.parse(offlineStatus(info, 'shutdown', 6).toString()) as Record<
      string,
      unknown
    >;
    expect(online).toMatchObject({ state: 'online', gateway: 'gw-1', sensors: ['a', 'b'] });
    expect(offline).toMatchObject({ state: 'offline', reason: 'shutdown' });
    expect(schemaErrors(validateStatus, online)).toBe('');
    expect(schemaErrors(validateStatus, offline)).toBe('');
    expect(validateStatus({ ...offline, reason: undefined })).toBe(false);
    const health = JSON.parse(
      healthPayload('gw-1', sampleHealth({ gateway: 'gw-1' }), 7).toString(),
    ) as Record<string, unknown>;
    expect(health).toMatchObject({
      schema: 'edge-agent/health/1',
      gateway: 'gw-1',
      t: 7,
      readings: 1200,
    });
    expect(schemaErrors(validateHealth, health)).toBe('');
  });
});

describe('topics', () => {
  it('derives and parses the gateway topics', () => {
    const t = gatewayTopics('edge', 'gw-1');
    expect(t).toEqual({
      telemetry: 'edge/gw-1/telemetry',
      status: 'edge/gw-1/status',
      health: 'edge/gw-1/health',
    });
    expect(parseGatewayTopic('edge', t.status)).toEqual({ gateway: 'gw-1', kind: 'status' });
    expect(parseGatewayTopic('edge', 'other/gw-1/status')).toBeUndefined();
    expect(parseGatewayTopic('edge', 'edge/gw-1/x')).toBeUndefined();
  });
});
