/**
 * The Sparkplug node's own broker session, made by the telemetry's code (broker-session.ts):
 * - bdSeq counts sessions (Sparkplug 3.0, tck-id-topics-nbirth-bdseq-increment): one per
 *   CONNECT sent, against a real mosquitto that is down for a while. Attempts refused at TCP
 *   level never sent a CONNECT, so they take no bdSeq.
 * - MQTT 5 by default, 3.1.1 with a broker that refuses 5 (the embedded Aedes).
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../../agent/config/load.js';
import { SparkplugNode } from '../../../../agent/consumers/sparkplug/node.js';
import { startAedes } from '../../../helpers/aedes.js';
import { databaseSavedAfter } from '../../../helpers/mosquitto.js';
import { type TestSubscriber } from '../../../helpers/subscriber.js';
import { useTeardown } from '../../../helpers/teardown.js';
import { waitUntil } from '../../../helpers/wait.js';
import { capturingLogger, type LogRecord } from '../../../helpers/logger.js';
import { bdSeqOf, nodeMessages } from './sparkplug-messages.js';

const t = useTeardown();

const ofType = (s: TestSubscriber, type: string) =>
  nodeMessages(s.messages).filter((m) => m.type === type);

/** Connection attempts the node saw refused at TCP level (nothing listening on the port). */
const refusedAttempts = (records: LogRecord[]) =>
  records.filter(
    (r) => r.msg.includes('connection error') && JSON.stringify(r).includes('ECONNREFUSED'),
  ).length;

/** A node for series a/temperature on `url`, its log captured, stopped after the test. */
async function startNode(url: string, dirPrefix: string) {
  const config = validateConfig(
    {
      gateway: { id: 'gw' },
      mqtt: { url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
      sparkplug: { enabled: true, groupId: 'plant' },
    },
    'test',
  );
  const log = capturingLogger();
  const node = await SparkplugNode.start({
    config,
    stateDir: t.tempDir(dirPrefix),
    logger: log.logger,
    series: new Map([['a', ['temperature'] as const]]),
  });
  t.add(() => node.stop());
  return { node, log };
}

describe('Sparkplug bdSeq', () => {
  it('rises by exactly one per CONNECT sent: attempts refused while the broker is down take none; the NDEATH at stop has the NBIRTH bdSeq', async () => {
    // The subscriber's session and its QoS 0 messages survive the broker's SIGKILL.
    const broker = await t.mosquitto({
      persistence: true,
      extraConfig: ['queue_qos0_messages true'],
    });
    const subscriber = await t.subscriber({
      url: broker.url,
      topics: ['spBv1.0/#'],
      clientId: 'bdseq-test-sub',
      clean: false,
    });
    const subscribedAt = Date.now();
    const { node, log } = await startNode(broker.url, 'sparkplug-bdseq-');
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH');
    const first = bdSeqOf(ofType(subscriber, 'NBIRTH')[0]);
    await databaseSavedAfter(broker, subscribedAt);

    await broker.kill();
    const downFrom = log.records.length;
    await waitUntil(() => refusedAttempts(log.records.slice(downFrom)) >= 3, {
      timeoutMs: 60_000,
      what: 'three connection attempts refused while the broker is down',
    });
    await broker.restart();
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 2, 60_000, 'the next NBIRTH');
    const second = bdSeqOf(ofType(subscriber, 'NBIRTH')[1]);
    // Every CONNECT that reached the broker, as the broker logged them (both runs of it).
    const connects =
      broker.log().match(/New client connected from \S+ as edge-agent-gw-sparkplug /g) ?? [];

    expect(first).toBeTypeOf('number');
    expect(second).toBe(((first ?? 0) + connects.length - 1) % 256);
    expect(connects).toHaveLength(2);

    await node.stop();
    await subscriber.waitFor((s) => ofType(s, 'NDEATH').length === 1, 30_000, 'NDEATH');
    expect(bdSeqOf(ofType(subscriber, 'NDEATH')[0])).toBe(second);
  });
});

describe('Sparkplug session', () => {
  it('falls back to MQTT 3.1.1 when the broker refuses 5, says so once, and births there; each CONNECT sent took a bdSeq', async () => {
    const broker = t.own(await startAedes());
    const subscriber = await t.subscriber({ url: broker.url, topics: ['spBv1.0/#'] });
    const { node, log } = await startNode(broker.url, 'sparkplug-v4-');
    await subscriber.waitFor((s) => ofType(s, 'NBIRTH').length === 1, 30_000, 'NBIRTH');

    const stats = node.stats();
    expect(stats).toMatchObject({ connected: true, protocolVersion: 4, born: true });
    const fallback = log.records.filter((r) => r.msg.includes('does not speak MQTT 5'));
    expect(fallback).toHaveLength(1);
    expect(fallback[0].msg).toMatch(/^sparkplug: /);
    // The refused MQTT 5 CONNECT was sent, so it took bdSeq 0; the 3.1.1 session has 1.
    expect(bdSeqOf(ofType(subscriber, 'NBIRTH')[0])).toBe(1);
    expect(stats.bdSeq).toBe(1);
  });
});
