/** `edge-agent tail` as a process against a real mosquitto. */
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  assembleTelemetry,
  onlineStatus,
  type DroppedNote,
} from '../../../agent/publish/payload.js';
import { spawnMosquitto } from '../../helpers/mosquitto.js';
import { runTs } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';
import { useTeardown } from '../../helpers/teardown.js';
import { windowBody } from './bodies.js';

const cli = fileURLToPath(new URL('../../../agent/cli.ts', import.meta.url));
const t = useTeardown();

async function publishAll(url: string, messages: [string, Buffer][]): Promise<void> {
  const client = await mqtt.connectAsync(url);
  for (const [topic, payload] of messages) await client.publishAsync(topic, payload, { qos: 1 });
  await client.endAsync();
}

const batch = (gw: string, seq: number, dropped?: DroppedNote) =>
  assembleTelemetry(gw, seq, Date.now(), windowBody(seq), dropped);
/** The agent's own note on seq 5 of the seqs it dropped before it. */
const note: DroppedNote = { count: 2, firstSeq: 3, lastSeq: 4, reason: 'lost-at-crash' };

describe('edge-agent tail', () => {
  it('prints batches and status, flags gaps and duplicates per gateway, exits 0 on SIGINT', async () => {
    const broker = await spawnMosquitto();
    t.add(() => broker.close());
    const json = runTs(cli, ['tail', '--broker', broker.url, '--json']);
    t.add(() => json.kill());
    const text = runTs(cli, ['tail', '--broker', broker.url, '--gateway', 'gw1']);
    t.add(() => text.kill());
    await waitUntil(
      () => json.stderr().includes('connected') && text.stderr().includes('connected'),
      {
        what: 'tail connected',
      },
    );
    const status = onlineStatus(
      { gateway: 'gw1', version: '9.9.9', startedAt: 1, sensors: ['a'] },
      2,
    );
    await publishAll(broker.url, [
      ['edge/gw1/status', status],
      ...[1, 2, 2, 5, 3].map((s): [string, Buffer] => [
        'edge/gw1/telemetry',
        batch('gw1', s, s === 5 ? note : undefined),
      ]),
      ['edge/gw2/telemetry', batch('gw2', 7)],
    ]);
    await waitUntil(() => json.lines().length >= 7, { what: '7 JSON events' });
    const events = json.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events[0]).toMatchObject({ event: 'status', gateway: 'gw1', state: 'online' });
    expect(
      events.slice(1).map((e) => `${String(e.gateway)}:${String(e.seq)}:${String(e.check)}`),
    ).toEqual([
      'gw1:1:first',
      'gw1:2:next',
      'gw1:2:duplicate',
      'gw1:5:gap',
      'gw1:3:late',
      'gw2:7:first',
    ]);
    expect(events[4]).toMatchObject({ missing: [3, 4], windows: 2, dropped: note });
    expect(events[2]).not.toHaveProperty('dropped');

    await waitUntil(() => text.lines().length >= 6, { what: '6 text lines' });
    const lines = text.lines();
    expect(lines.some((l) => l.includes('gw2'))).toBe(false);
    expect(lines[0]).toMatch(/gw1 status online version 9\.9\.9/);
    expect(lines[3]).toMatch(/gw1 seq 2 windows=2 .*DUPLICATE/);
    expect(lines[4]).toMatch(
      /gw1 seq 5 .*GAP: seq 3\.\.4 missing \(2\) {2}\(agent dropped 2: seq 3\.\.4, lost-at-crash\)/,
    );
    expect(lines[3]).not.toMatch(/agent dropped/);
    expect(lines[1]).toMatch(/boiler-in=21\.5 Cel dead-probe=failing faults=3/);

    expect(await json.kill('SIGINT')).toBe(0);
    expect(await text.kill('SIGINT')).toBe(0);
  });

  it('exits 1 with a clear message when the broker cannot be reached', async () => {
    const p = runTs(cli, ['tail', '--broker', 'mqtt://127.0.0.1:1']);
    t.add(() => p.kill());
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toMatch(/cannot reach the broker at mqtt:\/\/127\.0\.0\.1:1 .*ECONNREFUSED/);
  });

  it('understands batches in parts: a new part is not a duplicate, a repeated part is', async () => {
    const broker = await spawnMosquitto();
    t.add(() => broker.close());
    const json = runTs(cli, ['tail', '--broker', broker.url, '--json']);
    t.add(() => json.kill());
    const text = runTs(cli, ['tail', '--broker', broker.url]);
    t.add(() => text.kill());
    await waitUntil(
      () => json.stderr().includes('connected') && text.stderr().includes('connected'),
      { what: 'tail connected' },
    );
    const part = (seq: number, i: number, n: number) =>
      assembleTelemetry('gw1', seq, 7, windowBody(seq), undefined, { part: i, parts: n });
    await publishAll(
      broker.url,
      [batch('gw1', 1), part(2, 1, 2), part(2, 2, 2), part(2, 2, 2), batch('gw1', 3)].map(
        (p): [string, Buffer] => ['edge/gw1/telemetry', p],
      ),
    );
    await waitUntil(() => json.lines().length >= 5, { what: '5 JSON events' });
    const events = json.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => `${String(e.seq)}:${String(e.part)}:${String(e.check)}`)).toEqual([
      '1:undefined:first',
      '2:1:next',
      '2:2:part',
      '2:2:duplicate',
      '3:undefined:next',
    ]);
    expect(events[1]).toMatchObject({ parts: 2 });
    await waitUntil(() => text.lines().length >= 5, { what: '5 text lines' });
    expect(text.lines()[1]).toMatch(/gw1 seq 2 part 1\/2 windows=2/);
    expect(text.lines()[2]).not.toMatch(/DUPLICATE|GAP/);
    expect(text.lines()[3]).toMatch(/seq 2 part 2\/2 .*DUPLICATE/);
    expect(await json.kill('SIGINT')).toBe(0);
    expect(await text.kill('SIGINT')).toBe(0);
  });
});
