/**
 * A broker whose ACL makes `spBv1.0/#` read-only for the gateway and that closes the
 * connection after a denied publish (mosquitto 2.0 with `max_queued_messages 0`, as the
 * helper sets it): the Sparkplug session closes right after each NBIRTH. NBIRTH is QoS 0, not
 * acknowledged, so it must not restart the reconnect backoff: the closes count up in a row
 * (the delay grows to reconnectMaxMs) instead of a reconnect every reconnectMinMs forever, and
 * the likely cause is logged once. MQTT 5 and 3.1.1.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../../agent/config/load.js';
import { SparkplugNode } from '../../../../agent/consumers/sparkplug/node.js';
import { capturingLogger, type CapturedLog } from '../../../helpers/logger.js';
import { useTeardown } from '../../../helpers/teardown.js';
import { waitUntil } from '../../../helpers/wait.js';

const t = useTeardown();

/** Closes to see: the positive event the backoff is read from. */
const CLOSES = 4;

const lost = (log: CapturedLog) =>
  log.records.filter((r) => r.msg === 'sparkplug: MQTT connection lost; reconnecting');
const refusalWarnings = (log: CapturedLog) =>
  log.records.filter((r) => r.level === 40 && r.msg.includes('right after the NBIRTH'));

describe.each([5, 4] as const)('Sparkplug NBIRTH denied by the ACL, MQTT protocol %i', (pv) => {
  it('backs off instead of reconnecting at the minimum delay, and says why once', async () => {
    const broker = await t.mosquitto({
      users: { gw: 'gw-secret' },
      acl: ['user gw', 'topic readwrite edge/gw/#', 'topic read spBv1.0/#'],
    });
    const dir = t.tempDir('sparkplug-refused-');
    const passwordFile = join(dir, 'pw');
    writeFileSync(passwordFile, 'gw-secret\n');
    const config = validateConfig(
      {
        gateway: { id: 'gw' },
        mqtt: {
          url: broker.url,
          reconnectMinMs: 200,
          reconnectMaxMs: 1000,
          protocolVersion: pv,
          username: 'gw',
          passwordFile,
        },
        sparkplug: { enabled: true, groupId: 'plant' },
      },
      'test',
    );
    const log = capturingLogger();
    const node = await SparkplugNode.start({
      config,
      stateDir: join(dir, 'state'),
      logger: log.logger,
      series: new Map([['a', ['temperature'] as const]]),
    });
    t.add(() => node.stop());
    await waitUntil(() => lost(log).length >= CLOSES, {
      timeoutMs: 60_000,
      what: `${CLOSES} closes of the Sparkplug connection`,
    });

    // Each close follows an NBIRTH, and none restarts the backoff: 1, 2, 3, …
    const inARow = lost(log).map((r) => r.closesInARow);
    expect(inARow.slice(0, CLOSES)).toEqual([1, 2, 3, 4]);
    expect(node.status().births).toBeGreaterThanOrEqual(CLOSES);
    expect(refusalWarnings(log)).toHaveLength(1);
    expect(refusalWarnings(log)[0]).toMatchObject({ topic: 'spBv1.0/plant/NBIRTH/gw' });
    expect(refusalWarnings(log)[0]!.msg).toMatch(/ACL/);
  });
});
