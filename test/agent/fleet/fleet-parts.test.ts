/**
 * The small parts of commands over MQTT, on their own: the rate limit on an injected clock,
 * the request envelope, which response topics are the gateway's own, topic filter matching,
 * and secrets taken out of a configuration.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../agent/config/load.js';
import { redactSecrets } from '../../../agent/control/redact.js';
import { redactUrl } from '../../../drivers/network/url-text.js';
import { isReplyTopic, parseRequest } from '../../../agent/fleet/command-protocol.js';
import { RequestLimiter } from '../../../agent/fleet/rate-limit.js';
import { topicMatches } from '../../../agent/publish/session-hooks.js';
import { CommandSet } from '../../../agent/control/command.js';
import type { AgentControl } from '../../../agent/control/agent-control.js';
import { readCommand } from '../../../agent/control/read-command.js';
import { SensorError, type Driver } from '../../../drivers/types.js';

describe('RequestLimiter', () => {
  it('runs the burst, then one rate-limited answer a second, drops the rest, refills', () => {
    let now = 0;
    const limiter = new RequestLimiter({ perSecond: 2, burst: 3 }, () => now);
    const first = Array.from({ length: 10 }, () => limiter.admit());
    expect(first).toEqual(['run', 'run', 'run', 'rate-limited', ...Array(6).fill('drop')]);
    now = 500; // one token back
    expect([limiter.admit(), limiter.admit()]).toEqual(['run', 'drop']);
    now = 1000; // another token, and the next rate-limited answer
    expect([limiter.admit(), limiter.admit(), limiter.admit()]).toEqual([
      'run',
      'rate-limited',
      'drop',
    ]);
  });
});

describe('parseRequest', () => {
  it('reads an empty payload as no id and no arguments', () => {
    expect(parseRequest(Buffer.alloc(0))).toEqual({ ok: true, request: {} });
  });
  it('keeps the id of a request it refuses, and names what is wrong', () => {
    const r = parseRequest(Buffer.from(JSON.stringify({ id: 'a', args: [1] })));
    expect(r).toMatchObject({ ok: false, id: 'a' });
    expect(!r.ok && r.message).toContain('args');
    expect(parseRequest(Buffer.from('{nope'))).toMatchObject({ ok: false });
    expect(parseRequest(Buffer.from('"x"'))).toMatchObject({ ok: false });
  });
});

describe('isReplyTopic', () => {
  it('accepts only plain topic names below <prefix>/<gw>/reply/', () => {
    expect(isReplyTopic('edge', 'gw', 'edge/gw/reply/x')).toBe(true);
    expect(isReplyTopic('edge', 'gw', 'edge/gw/reply/')).toBe(false);
    expect(isReplyTopic('edge', 'gw', 'edge/gw/telemetry')).toBe(false);
    expect(isReplyTopic('edge', 'gw', 'edge/gw2/reply')).toBe(false);
    expect(isReplyTopic('edge', 'gw', 'edge/gw/reply/#')).toBe(false);
    expect(isReplyTopic('edge', 'gw', 'edge/gw/+/x')).toBe(false);
  });
});

describe('topicMatches', () => {
  it('matches + and # as MQTT does', () => {
    expect(topicMatches('edge/gw/cmd/#', 'edge/gw/cmd/config/get')).toBe(true);
    expect(topicMatches('edge/gw/cmd/#', 'edge/gw/cmd')).toBe(true);
    expect(topicMatches('edge/+/reply/#', 'edge/a/reply/status')).toBe(true);
    expect(topicMatches('edge/gw/cmd/#', 'edge/gw/reply/status')).toBe(false);
    expect(topicMatches('edge/+', 'edge/a/b')).toBe(false);
    expect(topicMatches('#', '$SYS/broker')).toBe(false);
    expect(topicMatches('homeassistant/status', 'homeassistant/status')).toBe(true);
  });
});

describe('redactSecrets', () => {
  it('takes out passwords, keys, tokens and URL credentials, keeps the paths to them', () => {
    const config = validateConfig({
      gateway: { id: 'gw' },
      mqtt: {
        url: 'mqtts://user:hunter2@broker.example:8883',
        passwordFile: '/etc/edge-agent/password',
        keyFile: '/etc/edge-agent/client.key',
      },
      sensors: [
        {
          id: 'web',
          driver: 'http-json',
          url: 'http://10.0.0.5/status?token=s3cr3t&unit=c',
          path: 'data.t',
        },
      ],
    });
    const text = JSON.stringify(redactSecrets(config));
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('s3cr3t');
    expect(text).toContain('/etc/edge-agent/password');
    expect(text).toContain('/etc/edge-agent/client.key');
    expect(text).toContain('unit=c');
    expect(redactSecrets({ a: { apiKey: 'k', token: 't', password: 'p', n: 1 } })).toEqual({
      a: { apiKey: '[redacted]', token: '[redacted]', password: '[redacted]', n: 1 },
    });
    expect(redactUrl('not a url')).toBe('not a url');
  });
});

describe('read', () => {
  const agentWith = (driver: Driver) =>
    ({
      sensor: (id: string) => (id === 's' ? { driver, timeoutMs: 50 } : undefined),
      config: () => validateConfig({ gateway: { id: 'gw' } }),
    }) as unknown as AgentControl;
  const run = (driver: Driver, args: unknown) =>
    new CommandSet().add(readCommand(agentWith(driver))).handle('read', args, { origin: 'remote' });

  it('answers a timeout even from a driver that ignores its abort signal', async () => {
    const hung: Driver = {
      kind: 'hung',
      quantities: ['temperature'],
      measure: () => new Promise(() => undefined),
    };
    expect(await run(hung, { sensor: 's' })).toEqual({
      ok: false,
      error: { code: 'failed', message: 'read failed: s: TIMEOUT: no answer within 50 ms' },
    });
  });

  it("answers the driver's error code and message", async () => {
    const failing: Driver = {
      kind: 'failing',
      quantities: ['temperature'],
      measure: () => Promise.reject(new SensorError('NACK', 'no ACK at 0x48')),
    };
    expect(await run(failing, { sensor: 's' })).toEqual({
      ok: false,
      error: { code: 'failed', message: 'read failed: s: NACK: no ACK at 0x48' },
    });
  });
});
