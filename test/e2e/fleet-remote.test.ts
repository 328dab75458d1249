/**
 * `edge-agent remote` against a live `edge-agent run` (the service, fleet.enabled) on a real
 * mosquitto: `reload` as SIGHUP (a sensor added, then an invalid file refused with its
 * problems and the running config kept), `read` of the added sensor, and the exit codes —
 * usage, an unreachable broker, a wrong password, a gateway that does not answer. Then the
 * embedded Aedes broker (MQTT 3.1.1) once.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddedBroker } from '../../simulator/broker.js';
import { CLI } from './agent-process.js';
import { startAedes } from '../helpers/aedes.js';
import { spawnMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import type { TestSubscriber } from '../helpers/subscriber.js';
import { useTeardown } from '../helpers/teardown.js';
import { waitUntil } from '../helpers/wait.js';
import {
  remoteCli,
  runCli as cli,
  startFleetAgent,
  type CliResult,
} from '../helpers/fleet-agent.js';

describe('edge-agent remote against edge-agent run (mosquitto)', () => {
  const t = useTeardown({ after: 'all' });
  let broker: MosquittoBroker;
  let http: Server;
  let httpPort = 0;
  let configFile: string;
  let dir: string;
  const base = () => [
    'gateway: { id: gwr }',
    `mqtt: { url: "${broker.url}" }`,
    `spool: { dir: ${join(dir, 'state')} }`,
    'fleet: { enabled: true }',
  ];
  let remote: (...words: string[]) => Promise<CliResult>;

  beforeAll(async () => {
    broker = await t.mosquitto();
    http = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ data: { temperature: 21.5 } }));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    t.add(() => new Promise((r) => http.close(r)));
    httpPort = (http.address() as { port: number }).port;
    dir = t.tempDir('edge-fleet-remote-');
    const operator = { broker: broker.url, gateway: 'gwr' };
    remote = remoteCli(operator);
    ({ configFile } = await startFleetAgent(t, {
      operator,
      dir,
      command: 'run',
      config: base(),
    }));
  }, 90_000);

  it('reload applies a sensor added to the file; read answers its reading', async () => {
    writeFileSync(
      configFile,
      [
        ...base(),
        'sensors:',
        `  - { id: lab, driver: http-json, url: "http://127.0.0.1:${httpPort}/s", path: data.temperature, intervalMs: 1000 }`,
        '',
      ].join('\n'),
    );
    const r = await remote('--json', 'reload');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      answer: { ok: true, result: { sensors: 1, restartNeeded: [] } },
    });
    const read = await remote('--json', 'read', 'lab');
    expect(read.code, read.stdout).toBe(0);
    expect(JSON.parse(read.stdout)).toMatchObject({
      answer: { ok: true, result: { measurements: [{ quantity: 'temperature', value: 21.5 }] } },
    });
  });

  it('reload of an invalid file is refused with its problems; the agent keeps running', async () => {
    writeFileSync(
      configFile,
      [...base(), 'sensors:', '  - { id: x, driver: nope }', ''].join('\n'),
    );
    const r = await remote('reload');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^gwr: REFUSED: reload: new configuration rejected; keeping the running one: .*sensors/m,
    );
    const status = await remote('--json', 'status');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      answer: { result: { sensors: [{ id: 'lab' }] } },
    });
  });

  it('exit codes: 0 all answered, 1 when one gateway does not answer, 2 for usage', async () => {
    const two = await remote('--timeout', '2', 'status');
    expect(two.code).toBe(0);
    const mixed = await remoteCli({ broker: broker.url, gateway: 'gwr,absent' })(
      '--timeout',
      '2',
      'status',
    );
    expect(mixed.code).toBe(1);
    expect(mixed.stdout).toMatch(/^gwr: ok$/m);
    expect(mixed.stdout).toMatch(/^absent: NO ANSWER: no answer within 2 s/m);
    const usage = await cli(['remote', '--gateway', 'gwr', 'status']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--broker URL is required');
    const unknown = await remote('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown remote command "frobnicate"');
  });

  it("each gateway's answer is printed as it arrives, not after the slowest one", async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'remote',
        '--broker',
        broker.url,
        '--gateway',
        'absent,gwr',
        '--timeout',
        '120',
        'status',
      ],
      { env: { ...process.env, EDGE_AGENT_MQTT_PASSWORD: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    t.add(() => {
      child.kill('SIGKILL');
      return exited;
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await waitUntil(() => /^gwr: ok$/m.test(stdout) || child.exitCode !== null, {
      timeoutMs: 45_000,
      what: "gwr's answer",
    });
    // Printed while the command still waits out its 120 s for the gateway that is not there.
    expect(stdout).toMatch(/^gwr: ok$/m);
    expect(child.exitCode).toBeNull();
    expect(stdout).not.toContain('absent');
  });

  it('exit 1 naming the broker when it cannot be reached or refuses the password, which is never printed', async () => {
    const closed = await remoteCli({ broker: 'mqtt://127.0.0.1:1', gateway: 'gwr' })('status');
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain('edge-agent remote: cannot connect to mqtt://127.0.0.1:1');
    const secured = await spawnMosquitto({ users: { op: 'right-one' } });
    try {
      const wrong = await remoteCli({
        broker: secured.url,
        gateway: 'gwr',
        username: 'op',
        password: 'wrong-one',
      })('status');
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^edge-agent remote: cannot connect to /);
      expect(wrong.stderr + wrong.stdout).not.toContain('wrong-one');
    } finally {
      await secured.close();
    }
  });
});

describe('edge-agent remote with the embedded Aedes broker (MQTT 3.1.1)', () => {
  const t = useTeardown({ after: 'all' });
  let broker: EmbeddedBroker;
  let sub: TestSubscriber;
  let remote: (...words: string[]) => Promise<CliResult>;

  beforeAll(async () => {
    broker = t.own(await startAedes());
    sub = await t.subscriber({
      url: broker.url,
      topics: ['homeassistant/device/gwa/config', 'spBv1.0/edge-agent/NBIRTH/gwa'],
    });
    const operator = { broker: broker.url, gateway: 'gwa', protocol: 4 } as const;
    remote = remoteCli(operator);
    await startFleetAgent(t, {
      operator,
      dir: t.tempDir('edge-fleet-aedes-'),
      config: [
        'gateway: { id: gwa }',
        'mqtt: { protocolVersion: 4 }',
        'fleet: { enabled: true }',
        'sensors:',
        '  - { id: boiler, driver: tmp102, bus: 1, address: 0x48, intervalMs: 500 }',
      ],
      args: ['--homeassistant', '--sparkplug'],
    });
  }, 90_000);

  it('announce publishes Home Assistant discovery and the Sparkplug NBIRTH again', async () => {
    const count = (suffix: string) => sub.messages.filter((m) => m.topic.endsWith(suffix)).length;
    await waitUntil(() => count('/config') > 0 && count('NBIRTH/gwa') > 0, {
      timeoutMs: 30_000,
      what: 'the first discovery and NBIRTH',
    });
    const discoveries = count('/config');
    const births = count('NBIRTH/gwa');
    const r = await remote('--json', 'announce');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      answer: { ok: true, result: { homeassistant: true, sparkplug: true } },
    });
    await waitUntil(() => count('/config') > discoveries && count('NBIRTH/gwa') > births, {
      timeoutMs: 15_000,
      what: 'discovery and NBIRTH again',
    });
  });

  it('status and read answer on the fixed reply topics', async () => {
    const status = await remote('status');
    expect(status.code, status.stdout + status.stderr).toBe(0);
    expect(status.stdout).toMatch(/sensors +1\/1 ok/);
    const read = await remote('--json', 'read', 'boiler');
    expect(read.code).toBe(0);
    expect(JSON.parse(read.stdout)).toMatchObject({
      gateway: 'gwa',
      answer: { ok: true, command: 'read', result: { sensor: 'boiler' } },
    });
  });
});
