import { describe, expect, it } from 'vitest';
import {
  PartPlanner,
  SIZE_FLOOR_BYTES,
  SIZE_STEP_BYTES,
  stepAtOrBelow,
  type Outgoing,
} from '../../../agent/publish/part-planner.js';
import type { SpooledBatch } from '../../../agent/publish/spool/store.js';
import { windowBody } from './bodies.js';
import { schemaErrors, validateTelemetry } from './schemas.js';

const TOPIC = 'edge/gw/telemetry';
const batch = (seq: number, readings = 0): SpooledBatch => ({
  seq,
  createdAt: 1_700_000_000_000,
  body: Buffer.from(windowBody(seq, { readings })),
});
type Msg = Record<string, unknown> & { windows: unknown[]; readings?: unknown[] };
const json = (m: Outgoing) => JSON.parse(m.payload.toString('utf8')) as Msg;

function sent(planner: PartPlanner, b: SpooledBatch): Outgoing[] {
  const plan = planner.plan(b);
  if (plan.kind !== 'send') throw new Error(`expected send, got ${plan.reason}`);
  return plan.messages;
}

describe('PartPlanner', () => {
  it('sends a batch whole when the broker announces no limit or it fits', () => {
    const planner = new PartPlanner('gw', TOPIC);
    expect(sent(planner, batch(1, 50))).toMatchObject([{ seq: 1, part: 0, parts: 0 }]);
    planner.setBrokerLimit(1 << 20);
    const [m] = sent(planner, batch(2, 50));
    expect(json(m).part).toBeUndefined();
    expect(planner.splits()).toBe(0);
  });

  it("splits a batch over the broker's Maximum Packet Size into schema-valid parts of one seq", () => {
    const planner = new PartPlanner('gw', TOPIC);
    planner.setBrokerLimit(3000);
    const b = batch(7, 100);
    const messages = sent(planner, b);
    expect(messages.length).toBeGreaterThan(1);
    const n = messages.length;
    for (const [i, m] of messages.entries()) {
      // The whole PUBLISH packet fits: payload + topic + fixed header, length, packet id, properties.
      expect(m.payload.length + TOPIC.length + 10).toBeLessThanOrEqual(3000);
      const p = json(m);
      expect(p).toMatchObject({ seq: 7, part: i + 1, parts: n, gateway: 'gw' });
      expect(schemaErrors(validateTelemetry, p)).toBe('');
    }
    const whole = JSON.parse(b.body.toString()) as Msg;
    expect(messages.flatMap((m) => json(m).readings)).toEqual(whole.readings);
    expect(messages.flatMap((m) => json(m).windows)).toEqual(whole.windows);
    expect(planner.splits()).toBe(1);
    // The batch is done only when every part is acknowledged; a replay leaves out acked parts.
    expect(planner.acknowledged(messages[0])).toBe(false);
    expect(sent(planner, b).map((m) => m.part)).toEqual(messages.slice(1).map((m) => m.part));
    for (const m of messages.slice(1, -1)) expect(planner.acknowledged(m)).toBe(false);
    expect(planner.acknowledged(messages[n - 1])).toBe(true);
  });

  it('sets a batch aside when a single window cannot fit the limit', () => {
    const planner = new PartPlanner('gw', TOPIC);
    planner.setBrokerLimit(300);
    const plan = planner.plan(batch(3));
    expect(plan.kind).toBe('set-aside');
    if (plan.kind === 'set-aside')
      expect(plan.reason).toMatch(/single window .* at most \d+ bytes/);
  });

  it('retries a refused message once, then splits it one size step down, and learns the limit', () => {
    const planner = new PartPlanner('gw', TOPIC);
    const b = batch(5, 60); // about 5 KiB: above the size floor
    const [whole] = sent(planner, b);
    expect(whole.payload.length).toBeGreaterThan(4096);
    expect(whole.payload.length).toBeLessThan(8192);
    expect(planner.refused(whole, 'closed')).toEqual({ kind: 'retry' });
    const split = planner.refused(whole, 'closed');
    expect(split).toEqual({ kind: 'split', limit: 4096 });
    const parts = sent(planner, b);
    expect(parts.length).toBeGreaterThanOrEqual(2);
    for (const p of parts) expect(p.payload.length).toBeLessThanOrEqual(4096);
    // A later batch of the same size is split before it is sent (the limit was learned).
    expect(sent(planner, batch(6, 60)).length).toBeGreaterThanOrEqual(2);
    expect(planner.learnedLimit()).toBe(4096);
    // The operator raised the broker's limit (edge-agent spool forget-limit): whole again.
    planner.forgetLearned();
    expect(planner.learnedLimit()).toBeUndefined();
    expect(sent(planner, batch(9, 60))).toMatchObject([{ seq: 9, part: 0, parts: 0 }]);
    // An announced limit is not learned: forgetting leaves it in force.
    planner.setBrokerLimit(3000);
    planner.forgetLearned();
    expect(sent(planner, batch(10, 60)).length).toBeGreaterThanOrEqual(2);
  });

  it('cuts the same parts whatever limit in the same size step led there (a restart sends the same bytes)', () => {
    const b = batch(8, 120);
    const cut = (limit: number) => {
      const planner = new PartPlanner('gw', TOPIC);
      planner.setBrokerLimit(limit);
      return sent(planner, b).map((m) => m.payload.toString());
    };
    expect(cut(3000)).toEqual(cut(2500));
    expect(cut(3000).length).toBeGreaterThan(1);
    expect(stepAtOrBelow(3000)).toBe(2048);
    expect(stepAtOrBelow(100)).toBe(SIZE_STEP_BYTES);
  });

  it('never re-splits a batch after one of its parts was delivered: it sets it aside', () => {
    const planner = new PartPlanner('gw', TOPIC);
    planner.setBrokerLimit(2000);
    const parts = sent(planner, batch(9, 80));
    planner.acknowledged(parts[0]);
    planner.refused(parts[1], 'too-large');
    const outcome = planner.refused(parts[1], 'too-large');
    expect(outcome.kind).toBe('set-aside');
  });

  it('does not read a close on a small message, or on one no larger than an acknowledged one, as a size limit', () => {
    const planner = new PartPlanner('gw', TOPIC);
    const [small] = sent(planner, batch(1));
    expect(small.payload.length).toBeLessThanOrEqual(SIZE_FLOOR_BYTES);
    // Once may be an outage; twice in a row is a refusal, and not for its size.
    expect(planner.refused(small, 'closed')).toEqual({ kind: 'retry' });
    expect(planner.refused(small, 'closed')).toEqual({ kind: 'not-size' });
    const [big] = sent(planner, batch(2, 60));
    planner.acknowledged(big);
    const [same] = sent(planner, batch(3, 60));
    planner.refused(same, 'closed');
    expect(planner.refused(same, 'closed')).toEqual({ kind: 'not-size' });
    // An explicit "packet too large" is believed at any size.
    expect(planner.refused(small, 'too-large')).toEqual({ kind: 'retry' });
  });

  it('sets aside a single window refused twice', () => {
    const planner = new PartPlanner('gw', TOPIC);
    const one: SpooledBatch = {
      seq: 4,
      createdAt: 1,
      body: Buffer.from('{"windows":[{"sensor":"a"}]}'),
    };
    const [m] = sent(planner, one);
    planner.refused(m, 'too-large');
    expect(planner.refused(m, 'too-large').kind).toBe('set-aside');
  });
});
