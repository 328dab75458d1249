import { describe, expect, it } from 'vitest';
import {
  explainConnectFailure,
  publishRefusal,
  RefusalPattern,
} from '../../../agent/publish/broker-errors.js';

const withCode = (code: number | string, message = 'x') =>
  Object.assign(new Error(message), { code });
const context = {
  url: 'mqtt://b:1883',
  protocolVersion: 5 as const,
  negotiated: false,
  beforeConnack: true,
};

describe('publishRefusal', () => {
  it('reads PUBACK reason codes >= 0x80 as refusals, topic-level ones apart', () => {
    expect(publishRefusal(withCode(0x10), 't')).toBeUndefined(); // no matching subscribers: delivered
    expect(publishRefusal(new Error('Connection closed'), 't')).toBeUndefined();
    expect(publishRefusal(withCode(0x87), 'edge/gw/telemetry')).toMatchObject({
      topicLevel: true,
      hint: expect.stringMatching(/write access to edge\/gw\/telemetry.*ACL/) as unknown,
    });
    expect(publishRefusal(withCode(0x90), 't')).toMatchObject({ topicLevel: true });
    expect(publishRefusal(withCode(0x97), 't')).toMatchObject({ topicLevel: true });
    expect(publishRefusal(withCode(0x95), 't')).toMatchObject({
      topicLevel: false,
      tooLarge: true,
    });
    expect(publishRefusal(withCode(0x80), 't')).toMatchObject({
      topicLevel: false,
      tooLarge: false,
    });
    expect(publishRefusal(withCode(0x99), 't')?.hint).toMatch(/payload format invalid/);
  });
});

describe('explainConnectFailure', () => {
  it('names the protocol version, the credentials or the client id from the CONNACK code', () => {
    expect(explainConnectFailure(withCode(1), context).hint).toMatch(
      /refuses MQTT 5 \(mqtt\.protocolVersion: 5\)/,
    );
    expect(explainConnectFailure(withCode(0x84), context).kind).toBe('protocol-version');
    expect(
      explainConnectFailure(withCode(1), { ...context, protocolVersion: 4, negotiated: true }).hint,
    ).toMatch(/refuses both MQTT 5 and MQTT 3\.1\.1/);
    expect(explainConnectFailure(withCode(5), context).hint).toMatch(
      /mqtt\.username and the password/,
    );
    expect(explainConnectFailure(withCode(0x86), context).kind).toBe('credentials');
    expect(explainConnectFailure(withCode(0x85), context).hint).toMatch(/mqtt\.clientId/);
    for (const code of [1, 5, 0x85, 0x88])
      expect(explainConnectFailure(withCode(code), context).refused).toBe(true);
  });

  it('says which TLS mix-up a reset before CONNACK likely is, and nothing of the kind for a refused port', () => {
    const reset = withCode('ECONNRESET', 'read ECONNRESET');
    expect(explainConnectFailure(reset, { ...context, url: 'mqtts://b:1883' }).hint).toMatch(
      /plain MQTT, not TLS/,
    );
    // A plain reset is a TLS port only if the port answers TLS; until probed, a network fault.
    expect(explainConnectFailure(reset, context)).toMatchObject({
      kind: 'network',
      probeTls: true,
    });
    expect(explainConnectFailure(reset, context).hint).not.toMatch(/TLS/);
    expect(explainConnectFailure(reset, { ...context, speaksTls: true }).hint).toMatch(
      /expects TLS.*mqtts:\/\//,
    );
    expect(explainConnectFailure(reset, { ...context, beforeConnack: false }).kind).toBe('network');
    const refused = withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1');
    expect(explainConnectFailure(refused, context)).toMatchObject({
      kind: 'network',
      refused: false,
    });
  });
});

describe('RefusalPattern', () => {
  it('a refusal repeated for one batch is about that batch; two batches refused with nothing acknowledged between is about the stream', () => {
    const pattern = new RefusalPattern();
    expect(pattern.refused(7)).toBe(false);
    expect(pattern.refused(7)).toBe(false);
    expect(pattern.refused(8)).toBe(true);
    pattern.acknowledged();
    expect(pattern.refused(9)).toBe(false);
  });
});
