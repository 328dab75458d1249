/**
 * The MQTT transport of commands on a real broker session (BrokerSession, whose hooks take a
 * wildcard filter and hand on the packet's properties) to a real mosquitto: answers within
 * the Maximum Packet Size the broker announced — a long list cut and said so, an answer that
 * cannot be cut refused as too-large —, and a retained request not carried out again on a new connection.
 */
import mqtt from 'mqtt';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../agent/config/load.js';
import { CommandSet } from '../../../agent/control/command.js';
import { CommandTransport } from '../../../agent/fleet/command-transport.js';
import { silentLogger } from '../../../agent/ops/logger.js';
import { BrokerSession } from '../../../agent/publish/broker-session.js';
import { useTeardown } from '../../helpers/teardown.js';
import { waitUntil } from '../../helpers/wait.js';

const t = useTeardown();
const MAX_PACKET = 1024;

function commands(): { set: CommandSet; runs: string[] } {
  const runs: string[] = [];
  const set = new CommandSet()
    .add({
      name: 'list/long',
      summary: 'a long list',
      args: z.strictObject({}),
      run: () => {
        runs.push('list/long');
        return Promise.resolve({ items: Array.from({ length: 500 }, (_, i) => `item-${i}`) });
      },
    })
    .add({
      name: 'blob',
      summary: 'one long string',
      args: z.strictObject({}),
      run: () => {
        runs.push('blob');
        return Promise.resolve({ blob: 'x'.repeat(5000) });
      },
    });
  return { set, runs };
}

async function setup() {
  const broker = await t.mosquitto({ extraConfig: [`max_packet_size ${MAX_PACKET}`] });
  const config = validateConfig({ gateway: { id: 'gw' }, mqtt: { url: broker.url } });
  const session = t.own(
    new BrokerSession({ gateway: 'gw', mqtt: config.mqtt, logger: silentLogger }),
    (s) => s.end(),
  );
  let up = false;
  session.start({
    will: () => ({
      topic: 'edge/gw/status',
      payload: Buffer.from('offline'),
      qos: 1,
      retain: true,
    }),
    connected: () => {
      up = true;
    },
    closed: () => ({ slower: false }),
  });
  const { set, runs } = commands();
  const transport = new CommandTransport({
    prefix: 'edge',
    gateway: 'gw',
    commands: set,
    channel: session,
    rateLimit: { perSecond: 100, burst: 100 },
    logger: silentLogger,
  });
  transport.start();
  t.add(() => transport.stop());
  await waitUntil(() => up, { timeoutMs: 15_000, what: 'session connected' });
  const op = t.own(
    await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 }),
    (c) => c.endAsync(),
  );
  const got: Array<{ topic: string; bytes: number; json: Record<string, unknown> }> = [];
  op.on('message', (topic, payload) =>
    got.push({
      topic,
      bytes: payload.length,
      json: JSON.parse(payload.toString()) as Record<string, unknown>,
    }),
  );
  await op.subscribeAsync('edge/gw/reply/#', { qos: 1 });
  // The agent's subscription is made once connected: a first answer is the marker.
  await waitUntil(
    async () => {
      await op.publishAsync('edge/gw/cmd/ping', '', { qos: 1 });
      await new Promise((r) => setTimeout(r, 100));
      return got.some((g) => g.topic === 'edge/gw/reply/ping');
    },
    { timeoutMs: 15_000, what: 'the transport answering' },
  );
  return { op, got, runs, transport, session };
}

describe('CommandTransport on a broker with a Maximum Packet Size', () => {
  it('cuts a long list to fit and says so; an answer without a list to cut is too-large', async () => {
    const { op, got } = await setup();
    await op.publishAsync('edge/gw/cmd/list/long', JSON.stringify({ id: 'l' }), { qos: 1 });
    await op.publishAsync('edge/gw/cmd/blob', JSON.stringify({ id: 'b' }), { qos: 1 });
    await waitUntil(
      () => got.some((g) => g.json.id === 'l') && got.some((g) => g.json.id === 'b'),
      {
        timeoutMs: 15_000,
        what: 'both answers',
      },
    );
    const long = got.find((g) => g.json.id === 'l')!;
    expect(long.topic).toBe('edge/gw/reply/list/long');
    expect(long.bytes).toBeLessThan(MAX_PACKET);
    expect(long.json).toMatchObject({ ok: true, result: { truncated: { items: 500 } } });
    const items = (long.json.result as { items: string[] }).items;
    expect(items.length).toBeGreaterThan(0);
    expect(items.length).toBeLessThan(500);
    expect(items[0]).toBe('item-0');
    const blob = got.find((g) => g.json.id === 'b')!;
    expect(blob.bytes).toBeLessThan(MAX_PACKET);
    expect(blob.json).toMatchObject({ ok: false, error: { code: 'too-large' } });
  });

  it('a retained request is not carried out again when it comes back on a new connection', async () => {
    const { op, got, runs, session } = await setup();
    // Live, a retained publish arrives as a plain one (retain cleared): it runs once.
    await op.publishAsync('edge/gw/cmd/blob', JSON.stringify({ id: 'r' }), {
      qos: 1,
      retain: true,
    });
    await waitUntil(() => got.some((g) => g.json.id === 'r'), {
      timeoutMs: 15_000,
      what: 'answer',
    });
    expect(runs).toEqual(['blob']);
    const from = got.length;
    // Reconnect: the broker hands the retained request again with the retain flag.
    await session.restart();
    await waitUntil(() => got.slice(from).some((g) => g.json.id === 'r'), {
      timeoutMs: 15_000,
      what: 'answer to the retained request',
    });
    expect(got.slice(from).find((g) => g.json.id === 'r')!.json).toMatchObject({
      ok: false,
      error: { code: 'bad-request', message: expect.stringContaining('retained') as string },
    });
    expect(runs).toEqual(['blob']);
    await op.publishAsync('edge/gw/cmd/blob', '', { qos: 1, retain: true });
  });
});
