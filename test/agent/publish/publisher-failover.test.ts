/**
 * mqtt.urls: the publisher moves to the next broker on connection loss, says which broker
 * it is on (never with the credentials a URL may carry), and what one broker did not
 * acknowledge goes out on the next. Real mosquitto processes; the NATS cluster case is in
 * test/chaos/cluster.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { brokerLabel } from '../../../agent/publish/connection-options.js';
import { freePort } from '../../helpers/ports.js';
import { missingSeqs } from '../../helpers/subscriber.js';
import { sleep, waitUntil } from '../../helpers/wait.js';
import { useTeardown } from '../../helpers/teardown.js';
import { windowBody } from './bodies.js';
import { makePublisher, type Harness } from './setup.js';

const t = useTeardown();

const broker = () => t.mosquitto();
/** A persistent QoS 1 subscriber to the telemetry. */
const subscriber = (url: string, clientId: string) =>
  t.subscriber({ url, topics: ['edge/gw/telemetry'], clientId, clean: false });
const publisher = (options: Parameters<typeof makePublisher>[0]): Harness =>
  t.own(makePublisher(options), (h) => h.dispose());

describe('brokerLabel', () => {
  it('leaves user name and password out of a broker URL, and keeps the rest', () => {
    expect(brokerLabel('mqtts://agent:s3cret@broker.example:8883')).toBe(
      'mqtts://broker.example:8883',
    );
    expect(brokerLabel('wss://agent@broker.example/mqtt')).toBe('wss://broker.example/mqtt');
    expect(brokerLabel('mqtt://127.0.0.1:1883')).toBe('mqtt://127.0.0.1:1883');
  });
});

describe('TelemetryPublisher with mqtt.urls', () => {
  it('the first broker is down at start: it moves to the next, names both in the log without the password, health names the one it is on', async () => {
    const live = await broker();
    const dead = await freePort();
    const h = publisher({
      mqtt: { urls: [`mqtt://agent:s3cret@127.0.0.1:${dead}`, live.url] },
    });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected to the second' });
    expect(h.publisher.stats().broker).toBe(live.url);
    const failed = h.log.records.find((r) => r.msg === 'MQTT connect failed; retrying');
    expect(failed).toMatchObject({
      broker: `mqtt://127.0.0.1:${dead}`,
      brokerIndex: 0,
      next: live.url,
    });
    expect(h.log.records.find((r) => r.msg === 'connected to the MQTT broker')).toMatchObject({
      broker: live.url,
      brokerIndex: 1,
    });
    expect(h.log.text()).not.toContain('s3cret');
  });

  it('SIGKILL of the broker it is on: it moves to the other one, and the batches in flight on the first arrive on the other', async () => {
    // Two brokers that share nothing: the spool alone carries the unacknowledged batches over.
    const [a, b] = [await broker(), await broker()];
    const subA = await subscriber(a.url, 'failover-sub-a');
    const subB = await subscriber(b.url, 'failover-sub-b');
    const h = publisher({ mqtt: { urls: [a.url, b.url], reconnectMinMs: 100 } });
    h.publisher.start();
    await waitUntil(() => h.publisher.stats().connected, { what: 'connected' });
    expect(h.publisher.stats().broker).toBe(a.url);
    const seqs: number[] = [];
    for (let i = 0; i < 10; i++) seqs.push(await h.publisher.submit(windowBody(i)));
    await subA.waitFor((s) => s.telemetrySeqs().length >= 10, 20_000, '10 on the first');
    // A hung broker takes these without answering: in flight, not acknowledged, when it dies.
    a.freeze();
    const unacknowledged: number[] = [];
    for (let i = 10; i < 15; i++) unacknowledged.push(await h.publisher.submit(windowBody(i)));
    seqs.push(...unacknowledged);
    await waitUntil(() => h.publisher.stats().inflight === 5, { what: '5 publishes in flight' });
    await a.kill();
    for (let i = 15; i < 20; i++) {
      seqs.push(await h.publisher.submit(windowBody(i)));
      await sleep(20);
    }
    await waitUntil(() => h.publisher.stats().spool.depth === 0, {
      timeoutMs: 30_000,
      what: 'every batch acknowledged by one broker or the other',
    });
    expect(h.publisher.stats()).toMatchObject({ broker: b.url, connected: true, setAside: 0 });
    const last = seqs[seqs.length - 1];
    const got = [...subA.telemetrySeqs(), ...subB.telemetrySeqs()];
    expect(missingSeqs(got, last)).toEqual([]);
    expect(subA.telemetrySeqs()).not.toContain(unacknowledged[0]);
    expect(subB.telemetrySeqs()).toEqual(expect.arrayContaining(unacknowledged));
  });
});
