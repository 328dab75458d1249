/**
 * `edge-agent run` — the built CLI as a child process — with `mqtt.urls` naming the three
 * nodes of a real nats-server cluster (test/helpers/nats.ts). The node the agent is on is
 * SIGKILLed: the agent moves to another node by itself, its health report names the node it
 * is on, and a persistent QoS 1 subscriber on a third node sees every seq.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { natsServerPath, spawnNatsCluster } from '../helpers/nats.js';
import { missingSeqs } from '../helpers/subscriber.js';
import { useTeardown } from '../helpers/teardown.js';
import {
  startHttpSensorServer,
  type HttpSensorServer,
} from '../../simulator/network/http-server.js';
import { startAgent } from './agent-process.js';

const nats = natsServerPath();
if (!nats) console.log('skipping the NATS cluster e2e test: nats-server is not installed');

const t = useTeardown();

describe('edge-agent run with mqtt.urls on a NATS cluster', () => {
  it.skipIf(!nats)(
    'SIGKILL of the node the agent is on: it moves on, health names the new node, and no seq is missing',
    async () => {
      const cluster = t.own(await spawnNatsCluster(3));
      const http: HttpSensorServer = t.own(await startHttpSensorServer({ delayMs: 5, sensors: 1 }));
      const gw = 'e2e-cluster';
      const sub = await t.subscriber({
        url: cluster.mqttUrls[2],
        topics: [`edge/${gw}/telemetry`, `edge/${gw}/health`],
        clientId: 'e2e-cluster-sub',
        clean: false,
      });
      const dir = t.tempDir('edge-cluster-');
      const file = join(dir, 'config.yaml');
      writeFileSync(
        file,
        [
          `gateway: { id: ${gw} }`,
          `mqtt: { urls: ${JSON.stringify(cluster.mqttUrls)}, qos: 1, reconnectMinMs: 200, reconnectMaxMs: 2000 }`,
          'aggregation: { windowMs: 300 }',
          "health: { schedule: '* * * * * *' }",
          'log: { level: info }',
          'sensors:',
          `  - { id: http-0, driver: http-json, url: "${http.url(0)}", path: data.temperature, intervalMs: 100 }`,
          '',
        ].join('\n'),
      );
      const agent = startAgent(['run', '--config', file], { STATE_DIRECTORY: join(dir, 'state') });
      t.add(async () => {
        agent.kill('SIGKILL');
        await agent.exited();
      });

      const healthBroker = () =>
        sub
          .on('/health')
          .map((m) => (m.json?.mqtt as { broker?: string } | undefined)?.broker)
          .at(-1);
      await sub.waitFor(
        (s) => s.telemetrySeqs().length >= 5 && healthBroker() !== undefined,
        60_000,
        '5 batches and a health report',
      );
      const firstUrl = healthBroker();
      expect(firstUrl).toBe(cluster.mqttUrls[0]);
      const first = cluster.nodeByPort(Number(new URL(cluster.mqttUrls[0]).port));
      await first!.kill();
      const seqAtKill = Math.max(...sub.telemetrySeqs());

      await sub.waitFor(
        (s) => Math.max(...s.telemetrySeqs()) >= seqAtKill + 10,
        90_000,
        '10 batches after the kill',
      );
      await sub.waitFor(
        () => healthBroker() !== undefined && healthBroker() !== firstUrl,
        30_000,
        'a health report naming another node',
      );
      expect(cluster.mqttUrls.slice(1)).toContain(healthBroker());

      agent.kill('SIGTERM');
      expect((await agent.exited()).code).toBe(0);
      const stopped = agent.logs().find((l) => String(l.msg).startsWith('publisher stopped'));
      expect(stopped?.leftInSpool).toBe(0);
      const last = Math.max(...sub.telemetrySeqs());
      await sub.waitFor(
        (s) => missingSeqs(s.telemetrySeqs(), last).length === 0,
        30_000,
        `every seq up to ${last}`,
      );
      expect(missingSeqs(sub.telemetrySeqs(), last)).toEqual([]);
      const lost = agent.logs().find((l) => l.msg === 'MQTT connection lost; reconnecting');
      expect(lost).toMatchObject({ broker: firstUrl });
    },
    360_000,
  );
});
