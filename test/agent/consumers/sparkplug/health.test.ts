/**
 * The Sparkplug node's figures in the health report (docs/payload.md, `sparkplug`): the whole
 * agent in-process against a real mosquitto, its reports checked against the closed schema.
 */
import { describe, expect, it } from 'vitest';
import { startSimPipeline } from '../../../helpers/sim-pipeline.js';
import { useTeardown } from '../../../helpers/teardown.js';
import { sampleHealth } from '../../publish/health-sample.js';
import { schemaErrors, validateHealth } from '../../publish/schemas.js';

const t = useTeardown();

type Report = Record<string, unknown> & { sparkplug: Record<string, unknown> | null };

describe('Sparkplug in the health report', () => {
  it('carries the node’s connection and session: broker, MQTT 5, bdSeq, birth, NDATA written; null when off', async () => {
    const sim = t.own(
      await startSimPipeline({
        sensors: 1,
        config: {
          health: { schedule: '* * * * * *' },
          aggregation: { windowMs: 500 },
          sparkplug: { enabled: true, groupId: 'plant' },
        },
        sensor: { intervalMs: 100 },
      }),
    );
    const reports = () => sim.subscriber.on('/health').map((m) => m.json as Report);
    const flowing = (r: Report) => r.sparkplug !== null && Number(r.sparkplug.published) > 0;
    await sim.subscriber.waitFor(
      () => reports().some(flowing),
      30_000,
      'a health report counting NDATA written',
    );
    for (const r of reports()) expect(schemaErrors(validateHealth, r)).toBe('');
    const report = reports().find(flowing)!;
    expect(report.sparkplug).toEqual({
      connected: true,
      broker: sim.broker.url,
      reconnects: 0,
      connectFailures: 0,
      protocolVersion: 5,
      lastError: null,
      // A fresh state directory and one CONNECT sent.
      bdSeq: 0,
      born: true,
      hostOnline: true,
      stored: expect.any(Number),
      published: expect.any(Number),
      births: 1,
    });
    // Closed: an unknown or a missing field of the part fails the schema.
    expect(validateHealth({ ...report, sparkplug: { ...report.sparkplug, unexpected: 1 } })).toBe(
      false,
    );
    const { bdSeq: _bdSeq, ...withoutBdSeq } = report.sparkplug!;
    expect(validateHealth({ ...report, sparkplug: withoutBdSeq })).toBe(false);
    // Without sparkplug.enabled the part is there, null.
    expect(sampleHealth().sparkplug).toBeNull();
    expect(schemaErrors(validateHealth, JSON.parse(JSON.stringify(sampleHealth())))).toBe('');
  });
});
