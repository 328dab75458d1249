/**
 * `edge-agent simulate --sparkplug` as users run it (the built CLI as a child process): a
 * Sparkplug host subscribed to spBv1.0/# sees NBIRTH before any NDATA, and the NDEATH — the
 * broker's Will after a SIGKILL, the agent's own on a clean stop — carries the NBIRTH's bdSeq.
 * Every message is decoded with sparkplug-payload.
 */
import { describe, expect, it } from 'vitest';
import { startAedes } from '../helpers/aedes.js';
import { useTeardown } from '../helpers/teardown.js';
import {
  bdSeqOf,
  nodeMessages,
  type SparkplugMessage,
} from '../agent/consumers/sparkplug/sparkplug-messages.js';
import { startAgent, type AgentProcess } from './agent-process.js';

const t = useTeardown();

function launch(args: string[]): AgentProcess {
  const agent = startAgent(args);
  t.add(async () => {
    agent.kill('SIGKILL');
    await agent.exited();
  });
  return agent;
}

const subscribe = (url: string) => t.subscriber({ url, topics: ['spBv1.0/#'] });

const ofType = (ms: SparkplugMessage[], type: string) => ms.filter((m) => m.type === type);

/** Births and data of one session: NBIRTH first, then NDATA seq 1, 2, … (mod 256). */
function expectSession(ms: SparkplugMessage[]): void {
  expect(ms[0].type).toBe('NBIRTH');
  expect(ms[0].seq).toBe(0);
  const data = ms.slice(1).filter((m) => m.type === 'NDATA');
  expect(data.map((m) => m.seq)).toEqual(data.map((_, i) => (i + 1) % 256));
}

describe('edge-agent simulate --sparkplug', () => {
  it('against mosquitto: NBIRTH with the scenario metrics before NDATA; SIGKILL → the Will NDEATH has the NBIRTH bdSeq; the next run has a new bdSeq and a clean stop sends its NDEATH', async () => {
    const broker = await t.mosquitto();
    const sub = await subscribe(broker.url);
    const state = t.tempDir('e2e-sparkplug-');
    const args = [
      'simulate',
      '--broker',
      broker.url,
      '--gateway',
      'spgw',
      '--state-dir',
      state,
      '--window',
      '500',
      '--sparkplug',
    ];
    const first = launch(args);
    await sub.waitFor(
      (s) => ofType(nodeMessages(s.messages), 'NDATA').length >= 3,
      60_000,
      'NBIRTH and three NDATA',
    );
    const firstRun = nodeMessages(sub.messages);
    expect(firstRun.every((m) => m.topic.startsWith('spBv1.0/edge-agent/'))).toBe(true);
    expect(firstRun.every((m) => m.topic.endsWith('/spgw'))).toBe(true);
    expectSession(firstRun);
    const birth = firstRun[0];
    const series = birth.metrics.filter(
      (m) => m.name.includes('/') && m.name !== 'Node Control/Rebirth',
    );
    expect(series.length).toBeGreaterThan(3);
    expect(series.every((m) => m.type === 'Double' && typeof m.unit === 'string')).toBe(true);
    expect(series.some((m) => m.name.endsWith('/temperature') && m.unit === 'Cel')).toBe(true);
    const announced = new Set(birth.metrics.map((m) => m.name));
    for (const d of ofType(firstRun, 'NDATA')) {
      for (const m of d.metrics) expect(announced.has(m.name)).toBe(true);
    }

    first.kill('SIGKILL');
    await first.exited();
    await sub.waitFor(
      (s) => ofType(nodeMessages(s.messages), 'NDEATH').length === 1,
      30_000,
      'Will',
    );
    const will = ofType(nodeMessages(sub.messages), 'NDEATH')[0];
    expect(bdSeqOf(will)).toBe(bdSeqOf(birth));

    const seen = sub.messages.length;
    const second = launch(args);
    await sub.waitFor(
      (s) => ofType(nodeMessages(s.messages.slice(seen)), 'NDATA').length >= 2,
      60_000,
      'second run NBIRTH and NDATA',
    );
    second.kill('SIGTERM');
    expect((await second.exited()).code).toBe(0);
    await sub.waitFor(
      (s) => ofType(nodeMessages(s.messages.slice(seen)), 'NDEATH').length === 1,
      30_000,
      'NDEATH of the clean stop',
    );
    const secondRun = nodeMessages(sub.messages.slice(seen));
    expectSession(secondRun.slice(0, -1));
    expect(bdSeqOf(secondRun[0])).not.toBe(bdSeqOf(birth));
    expect(bdSeqOf(secondRun.at(-1)!)).toBe(bdSeqOf(secondRun[0]));
  });

  it('against the embedded Aedes broker: --duration runs NBIRTH, NDATA and a final NDEATH, exit 0', async () => {
    const broker = t.own(await startAedes());
    const sub = await subscribe(broker.url);
    const agent = launch([
      'simulate',
      '--broker',
      broker.url,
      '--gateway',
      'aedes-gw',
      '--state-dir',
      t.tempDir('e2e-sparkplug-'),
      '--window',
      '500',
      '--duration',
      '4',
      '--sparkplug',
    ]);
    expect((await agent.exited()).code).toBe(0);
    expect(agent.stdout()).toContain('sparkplug B on spBv1.0/edge-agent/+/aedes-gw');
    await sub.waitFor(
      (s) => ofType(nodeMessages(s.messages), 'NDEATH').length === 1,
      30_000,
      'NDEATH',
    );
    const all = nodeMessages(sub.messages);
    expect(all.at(-1)!.type).toBe('NDEATH');
    expectSession(all.slice(0, -1));
    expect(ofType(all, 'NDATA').length).toBeGreaterThanOrEqual(1);
    expect(bdSeqOf(all.at(-1)!)).toBe(bdSeqOf(all[0]));
  });
});
