/**
 * Commands with answers over MQTT (fleet.enabled) from a live agent — the built CLI's
 * `simulate --config` — against a real mosquitto on the ACL lines of docs/operations.md (Running
 * a fleet: the gateway user `gw` reads `edge/gw/cmd/#` and writes `edge/gw/#` only, the
 * `operator` writes `edge/+/cmd/#` and reads `edge/+/reply/#`); under MQTT 5 and 3.1.1.
 * The operator is `edge-agent remote` and, for requests the CLI would not send, a raw client.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MosquittoBroker } from '../helpers/mosquitto.js';
import {
  documentedFleetAcl,
  remoteCli,
  startFleetAgent,
  type CliResult,
} from '../helpers/fleet-agent.js';
import { useTeardown } from '../helpers/teardown.js';
import { schemaErrors, validateHealth } from '../agent/publish/schemas.js';

const GW_PASSWORD = 'gw-secret-Pa55';
const OP_PASSWORD = 'op-secret-Pa55';
const PER_SECOND = 5;
const BURST = 10;

type Answer = {
  gateway: string;
  command: string;
  id?: string | number;
  note?: string;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
};

/** The operator as a raw MQTT client: every answer on `edge/+/reply/#` is recorded. */
async function operator(url: string, protocolVersion: 4 | 5) {
  const client: MqttClient = await mqtt.connectAsync(url, {
    protocolVersion,
    username: 'operator',
    password: OP_PASSWORD,
    reconnectPeriod: 0,
  });
  const answers: Array<{ topic: string; answer: Answer; correlation?: string }> = [];
  client.on('message', (topic, payload, packet) => {
    const correlation = packet.properties?.correlationData?.toString('utf8');
    answers.push({
      topic,
      answer: JSON.parse(payload.toString('utf8')) as Answer,
      ...(correlation !== undefined ? { correlation } : {}),
    });
  });
  const granted = await client.subscribeAsync('edge/+/reply/#', { qos: 1 });
  expect(granted[0]?.qos).toBeLessThan(0x80);
  type Received = (typeof answers)[number];
  /** The first answer after the request that `match` accepts (by default: the first). */
  async function tryAsk(
    name: string,
    payload: string,
    o: {
      options?: IClientPublishOptions;
      match?: (a: Received) => boolean;
      timeoutMs?: number;
    } = {},
  ): Promise<Received | undefined> {
    const from = answers.length;
    const match = o.match ?? (() => true);
    await client.publishAsync(`edge/gw/cmd/${name}`, payload, { qos: 1, ...o.options });
    const deadline = Date.now() + (o.timeoutMs ?? 15_000);
    while (Date.now() < deadline) {
      const found = answers.slice(from).find(match);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  }
  return {
    client,
    answers,
    tryAsk,
    async ask(...args: Parameters<typeof tryAsk>): Promise<Received> {
      const found = await tryAsk(...args);
      if (!found) throw new Error(`no answer to ${args[0]} ${args[1]}`);
      return found;
    },
    close: () => client.endAsync(),
  };
}

describe.each([5, 4] as const)('fleet commands over MQTT %s with an ACL', (protocol) => {
  const t = useTeardown({ after: 'all' });
  let broker: MosquittoBroker;
  let configFile: string;
  let cli: (...words: string[]) => Promise<CliResult>;

  beforeAll(async () => {
    broker = await t.mosquitto({
      users: { gw: GW_PASSWORD, operator: OP_PASSWORD },
      acl: documentedFleetAcl(),
    });
    const dir = t.tempDir('edge-fleet-');
    writeFileSync(join(dir, 'gw-password'), GW_PASSWORD + '\n');
    const operator = {
      broker: broker.url,
      gateway: 'gw',
      username: 'operator',
      password: OP_PASSWORD,
      protocol,
    };
    cli = remoteCli(operator);
    ({ configFile } = await startFleetAgent(t, {
      operator,
      dir,
      config: [
        'gateway: { id: gw }',
        `mqtt: { username: gw, passwordFile: gw-password, protocolVersion: ${protocol} }`,
        `fleet: { enabled: true, rateLimit: { perSecond: ${PER_SECOND}, burst: ${BURST} } }`,
        'aggregation: { windowMs: 1000 }',
        'sensors:',
        '  - { id: boiler, driver: tmp102, bus: 1, address: 0x48, intervalMs: 500 }',
      ],
    }));
  }, 90_000);

  it('status: the health report now, with the command counters', async () => {
    const r = await cli('--json', 'status');
    expect(r.code, r.stderr).toBe(0);
    const { answer } = JSON.parse(r.stdout) as { answer: Answer };
    expect(answer).toMatchObject({ gateway: 'gw', command: 'status', ok: true });
    expect(answer.result).toMatchObject({ schema: 'edge-agent/health/1', gateway: 'gw' });
    expect(schemaErrors(validateHealth, answer.result)).toBe('');
    expect((answer.result as { commands: { requests: number } }).commands.requests).toBeGreaterThan(
      0,
    );
    const text = await cli('status');
    expect(text.stdout).toMatch(/^gw: ok$/m);
    expect(text.stdout).toMatch(/sensors +1\/1 ok/);
  });

  it('config get: the running config without secrets, the file hash, no version', async () => {
    const r = await cli('--json', 'config', 'get');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain(GW_PASSWORD);
    const { answer } = JSON.parse(r.stdout) as { answer: Answer };
    expect(answer.result).toMatchObject({
      file: configFile,
      hash: createHash('sha256').update(readFileSync(configFile)).digest('hex'),
      version: null,
      config: { gateway: { id: 'gw' }, fleet: { enabled: true } },
    });
  });

  it('read: one sensor now; an unknown sensor is refused with the ones there are', async () => {
    const r = await cli('--json', 'read', 'boiler');
    expect(r.code, r.stderr).toBe(0);
    const { answer } = JSON.parse(r.stdout) as { answer: Answer };
    expect(answer.result).toMatchObject({
      sensor: 'boiler',
      measurements: [{ quantity: 'temperature', status: 'ok' }],
    });
    const unknown = await cli('read', 'attic');
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toMatch(
      /^gw: REFUSED: read: no enabled sensor "attic"; enabled: boiler$/m,
    );
  });

  it('announce answers what it re-announced; reload is refused where there is no file to reload', async () => {
    const announce = await cli('--json', 'announce');
    expect(announce.code, announce.stderr).toBe(0);
    expect((JSON.parse(announce.stdout) as { answer: Answer }).answer.result).toEqual({
      homeassistant: null,
      sparkplug: null,
    });
    const reload = await cli('reload');
    expect(reload.code).toBe(1);
    expect(reload.stdout).toContain('gw: REFUSED: reload: this agent has no configuration file');
  });

  it('spool: figures, dead letters, a change refused with nothing changed, an unknown action answered', async () => {
    const status = await cli('--json', 'spool', 'status');
    expect(status.code, status.stderr).toBe(0);
    const { answer } = JSON.parse(status.stdout) as { answer: Answer };
    expect(answer).toMatchObject({ command: 'spool/status', ok: true });
    expect(answer.result).toMatchObject({ deadLetters: 0, learnedLimits: {} });
    expect(typeof answer.result?.depth).toBe('number');
    const list = await cli('--json', 'spool', 'dead-letters');
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { answer: Answer }).answer.result).toMatchObject({
      total: 0,
      rows: [],
    });
    const requeue = await cli('spool', 'requeue', '7');
    expect(requeue.code).toBe(1);
    expect(requeue.stdout).toMatch(
      /^gw: REFUSED: spool\/requeue: seq 7 is not a dead letter \(dead letters: none\); nothing changed$/m,
    );
    const dropAll = await cli('--json', 'spool', 'drop', '--all');
    expect(dropAll.code, dropAll.stderr).toBe(0);
    expect((JSON.parse(dropAll.stdout) as { answer: Answer }).answer.result).toEqual({
      count: 0,
      seqs: [],
    });
    const unknown = await cli('spool', 'shred');
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toMatch(/^gw: UNKNOWN-COMMAND: unknown command "spool\/shred"/m);
  });

  it('unknown command, malformed JSON and bad arguments each get an answer with the reason', async () => {
    const op = await operator(broker.url, protocol);
    try {
      const unknown = await op.ask('frobnicate', JSON.stringify({ id: 'u1' }), {
        match: byId('u1'),
      });
      expect(unknown.topic).toBe('edge/gw/reply/frobnicate');
      expect(unknown.answer).toMatchObject({
        id: 'u1',
        ok: false,
        error: { code: 'unknown-command' },
      });
      expect(unknown.answer.error?.message).toContain('config/get');

      const malformed = await op.ask('status', '{"id": "m1", ', {
        match: (a) => a.answer.command === 'status' && a.answer.id === undefined,
      });
      expect(malformed.answer).toMatchObject({ ok: false, error: { code: 'bad-request' } });
      expect(malformed.answer.error?.message).toContain('not JSON');

      const envelope = await op.ask('status', JSON.stringify({ id: 'e1', argz: {} }), {
        match: byId('e1'),
      });
      expect(envelope.answer).toMatchObject({
        id: 'e1',
        ok: false,
        error: { code: 'bad-request' },
      });

      const badArgs = await op.ask('read', JSON.stringify({ id: 7, args: { sensor: 3 } }), {
        match: byId(7),
      });
      expect(badArgs.topic).toBe('edge/gw/reply/read');
      expect(badArgs.answer).toMatchObject({ id: 7, ok: false, error: { code: 'bad-request' } });
      expect(badArgs.answer.error?.message).toMatch(/^read: sensor: /);
    } finally {
      await op.close();
    }
  });

  it.runIf(protocol === 5)(
    'MQTT 5: the answer goes to the response topic with the correlation data; one outside the gateway’s topics is not used',
    async () => {
      const op = await operator(broker.url, 5);
      try {
        const own = await op.ask('status', '', {
          options: {
            properties: {
              responseTopic: 'edge/gw/reply/mine/1',
              correlationData: Buffer.from('c-1'),
            },
          },
          match: (a) => a.correlation === 'c-1',
        });
        expect(own.topic).toBe('edge/gw/reply/mine/1');
        expect(own.correlation).toBe('c-1');
        expect(own.answer).toMatchObject({ ok: true, command: 'status' });

        const outside = await op.ask('status', '', {
          options: {
            properties: {
              responseTopic: 'edge/other/reply/x',
              correlationData: Buffer.from('c-2'),
            },
          },
          match: (a) => a.correlation === 'c-2',
        });
        expect(outside.topic).toBe('edge/gw/reply/status');
        expect(outside.correlation).toBe('c-2');
        expect(outside.answer.note).toContain('"edge/other/reply/x" is not below edge/gw/reply/');
        // Not even the gateway's own telemetry topic: answers never mix with data.
        const telemetry = await op.ask('status', '', {
          options: {
            properties: { responseTopic: 'edge/gw/telemetry', correlationData: Buffer.from('c-3') },
          },
          match: (a) => a.correlation === 'c-3',
        });
        expect(telemetry.topic).toBe('edge/gw/reply/status');
      } finally {
        await op.close();
      }
    },
  );

  it('a flood of 100 requests a second: rate-limited answers bounded, the agent answers after, memory bounded', async () => {
    const op = await operator(broker.url, protocol);
    try {
      const before = await op.ask('status', JSON.stringify({ id: 'before' }), {
        match: byId('before'),
      });
      const rssBefore = before.answer.result!.rssBytes as number;
      const from = op.answers.length;
      const started = Date.now();
      // 100 a second for 5 s, at QoS 0 (the operator does not wait for each).
      for (let tick = 0; tick < 50; tick++) {
        for (let i = 0; i < 10; i++) {
          op.client.publish('edge/gw/cmd/status', JSON.stringify({ id: `f${tick}-${i}` }), {
            qos: 0,
          });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      // The positive marker: a status answered after the flood (the bucket refills).
      let after: Answer | undefined;
      for (let attempt = 0; attempt < 30 && !after; attempt++) {
        const id = `after-${attempt}`;
        const a = await op.tryAsk('status', JSON.stringify({ id }), {
          match: byId(id),
          timeoutMs: 2000,
        });
        if (a?.answer.ok) after = a.answer;
      }
      expect(after, 'status answered after the flood').toBeDefined();
      const span = Date.now() - started;
      const flood = op.answers.slice(from).map((a) => a.answer);
      const limited = flood.filter((a) => a.error?.code === 'rate-limited');
      expect(limited.length).toBeGreaterThan(0);
      // At most one rate-limited answer a second, over the span the agent could have sent them.
      expect(limited.length).toBeLessThanOrEqual(Math.floor(span / 1000) + 1);
      // Results: the burst plus the refill over the span, never the flood's 500.
      const served = flood.filter((a) => a.ok).length;
      expect(served).toBeLessThanOrEqual(BURST + Math.ceil((span / 1000) * PER_SECOND) + 1);
      const counters = after!.result!.commands as Record<string, number>;
      expect(counters.dropped).toBeGreaterThan(0);
      expect(counters.rateLimited).toBeGreaterThanOrEqual(counters.dropped);
      // Generous: a leak of the flood's requests would not be bounded at all.
      expect(after!.result!.rssBytes as number).toBeLessThan(rssBefore + 64 * 2 ** 20);
    } finally {
      await op.close();
    }
  }, 90_000);
});

function byId(id: string | number) {
  return (a: { answer: Answer }) => a.answer.id === id;
}
