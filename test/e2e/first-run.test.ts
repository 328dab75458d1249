/**
 * The first run as a newcomer meets it: the built CLI started directly, `simulate` on a
 * terminal (a pseudo-terminal made by util-linux `script`), the README's command table
 * against the CLI's own help, and `simulate --config` on the shipped example config.
 */
import { spawn, spawnSync } from 'node:child_process';
import { constants, accessSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { useTeardown } from '../helpers/teardown.js';
import { CLI, startAgent, type TelemetryWindow } from './agent-process.js';

const COMMANDS = ['run', 'simulate', 'check-config', 'scan', 'tail', 'remote'];
const help = (command: string) =>
  spawnSync(process.execPath, [CLI, command, '--help'], { encoding: 'utf8', timeout: 30_000 });

/** ANSI colour and cursor sequences, which a terminal interprets and a test does not. */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

const scriptMissing = spawnSync('script', ['--version']).status !== 0;
if (scriptMissing) console.log('skipping the terminal tests: util-linux `script` is not installed');

/**
 * The CLI with stdout on a pseudo-terminal, as `npm start` in a terminal runs it. Resolves
 * with everything it wrote (colours and cursor moves removed, CR LF as LF) once it exited;
 * bounded by `timeoutMs`. Callers pass --duration: the agent ends by itself.
 */
function onTerminal(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; text: string }> {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`);
  return new Promise((resolve) => {
    const child = spawn('script', ['-q', '-e', '-c', quoted.join(' '), '/dev/null'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: undefined },
    });
    let raw = '';
    child.stdout.on('data', (d: Buffer) => (raw += d.toString()));
    child.stderr.on('data', (d: Buffer) => (raw += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, text: raw.replace(ANSI, '').replaceAll('\r\n', '\n') });
    });
  });
}

describe('the first run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-first-run-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the built cli.js is executable, so npx edge-agent runs it directly', () => {
    expect(() => accessSync(CLI, constants.X_OK)).not.toThrow();
    const r = spawnSync(CLI, ['--version'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.error).toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
  });

  it('every --help fits 80 columns, and simulate’s usage names every option it takes', () => {
    for (const command of COMMANDS) {
      const r = help(command);
      expect(r.status, command).toBe(0);
      const wide = r.stdout.split('\n').filter((l) => [...l].length > 80);
      expect(wide, command).toEqual([]);
    }
    const text = help('simulate').stdout;
    const usage = text.slice(text.indexOf('usage:'), text.indexOf('options:'));
    const options = [...text.slice(text.indexOf('options:')).matchAll(/^ {2}--([a-z-]+)/gm)]
      .map((m) => m[1])
      .filter((o) => o !== 'help');
    expect(options.length).toBeGreaterThan(10);
    for (const o of options) expect(usage, o).toContain(`--${o}`);
  });

  it('the README command table is narrow and names only options the CLI takes', () => {
    const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Commands'), readme.indexOf('## Configuration'));
    const rows = section.split('\n').filter((l) => l.startsWith('|'));
    expect(rows.length).toBeGreaterThanOrEqual(COMMANDS.length + 2);
    for (const row of rows) expect([...row].length, row).toBeLessThanOrEqual(110);
    // Each command the section names with options: every such option is in its --help.
    const helpOf = new Map(COMMANDS.map((c) => [c, help(c).stdout]));
    const mentions = [...section.matchAll(/`(?:edge-agent )?([a-z-]+)((?: \[?--[a-z-]+[^`]*)?)`/g)];
    let checked = 0;
    for (const [, command, rest] of mentions) {
      const text = helpOf.get(command);
      if (text === undefined) continue;
      for (const [option] of rest.matchAll(/--[a-z-]+/g)) {
        expect(text, `${command} ${option}`).toMatch(new RegExp(`^ {2}${option}\\b`, 'm'));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5);
  });

  it.skipIf(scriptMissing)(
    'simulate on a terminal prints each batch, one line for the sensors, no broker warning',
    async () => {
      const { code, text } = await onTerminal(
        ['simulate', '--state-dir', join(dir, 'tty'), '--window', '1000', '--duration', '8'],
        60_000,
      );
      expect(code, text).toBe(0);
      // A line per batch as a subscriber receives it, in tail's words.
      expect(text).toMatch(/^\d\d:\d\d:\d\d\.\d{3} telemetry sim seq 1 windows=\d+ /m);
      expect(text).toMatch(/^\d\d:\d\d:\d\d\.\d{3} telemetry sim seq 2 windows=\d+ /m);
      // "pipeline running" says how many sensors of which drivers, not the list.
      expect(text).toMatch(/pipeline running\n(?: {4}.*\n)*? {4}drivers: "/);
      expect(text).not.toMatch(/"driver":/);
      // The embedded broker speaks 3.1.1 without ACLs: the warning for real brokers stays away.
      expect(text).not.toMatch(/MQTT 3\.1\.1|deliveryCheck|ACL/);
      expect(text).toContain('pipeline stopped');
    },
    90_000,
  );

  it('simulate into a pipe keeps to the JSON log, for journald and scripts', async () => {
    const agent = startAgent([
      'simulate',
      '--state-dir',
      join(dir, 'pipe'),
      '--window',
      '1000',
      '--duration',
      '4',
    ]);
    const { code } = await agent.exited();
    expect(code, agent.stdout() + agent.stderr()).toBe(0);
    const lines = agent.stdout().trim().split('\n');
    const plain = lines.filter((l) => !l.startsWith('{'));
    expect(plain, agent.stdout()).toEqual([
      expect.stringMatching(/^embedded MQTT broker: mqtt:\/\/127\.0\.0\.1:\d+$/),
      expect.stringMatching(/^simulating \d+ sensors /),
    ]);
    expect(agent.logs().some((l) => l.msg === 'pipeline stopped')).toBe(true);
  }, 60_000);

  it.skipIf(scriptMissing)(
    'the concurrency demo’s last frame shows the sensors it ran, not a stopped pipeline',
    async () => {
      const { code, text } = await onTerminal(
        [
          'simulate',
          '--state-dir',
          join(dir, 'fleet'),
          '--sensors',
          '3',
          '--latency',
          '1',
          '--interval',
          '200',
          '--duration',
          '4',
        ],
        60_000,
      );
      expect(code, text).toBe(0);
      const frames = text.split('edge-agent simulate — ').slice(1);
      expect(frames.length, text).toBeGreaterThan(0);
      const last = frames[frames.length - 1];
      expect(last, text).toMatch(/^3 sensors\n/);
      expect(last).not.toMatch(/per-sensor rate\s+0\.000 Hz/);
    },
    90_000,
  );
});

describe('simulate against mosquitto', () => {
  let broker: MosquittoBroker;
  const dir = mkdtempSync(join(tmpdir(), 'edge-first-example-'));
  const t = useTeardown();
  beforeAll(async () => {
    broker = await spawnMosquitto();
  });
  afterAll(async () => {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends each period’s windows in one batch, the ASCII thermometer’s included', async () => {
    const gw = 'first-periods';
    const sub = await t.subscriber({ url: broker.url, topics: [`edge/${gw}/telemetry`] });
    const agent = startAgent([
      'simulate',
      '--broker',
      broker.url,
      '--gateway',
      gw,
      '--state-dir',
      join(dir, 'periods'),
      '--window',
      '2000',
    ]);
    t.add(async () => {
      agent.kill('SIGTERM');
      await agent.exited();
    });
    const batches = () =>
      sub
        .on('/telemetry')
        .map((m) => (m.json?.windows ?? []) as Array<TelemetryWindow & { start: number }>);
    const withAscii = () =>
      batches().filter((ws) => ws.some((w) => w.sensor === 'boiler-ascii' && w.count > 0));
    await sub.waitFor(() => withAscii().length >= 3, 40_000, 'three ASCII windows with readings');
    // Its window travels with the other sensors' windows of the same period. Before, it
    // always came alone about a second later; a machine too busy to close a period's windows
    // within the coalescing time may still split one now and then, so one period is the proof.
    const together = withAscii().filter((ws) => {
      const ascii = ws.find((w) => w.sensor === 'boiler-ascii')!;
      return ws.filter((w) => w.sensor !== 'boiler-ascii' && w.start === ascii.start).length > 5;
    });
    expect(
      together.length,
      JSON.stringify(withAscii().map((ws) => ws.map((w) => [w.sensor, w.start]))),
    ).toBeGreaterThan(0);
  }, 90_000);

  it('--config systemd/config.example.yaml reads its Modbus TCP device from a loopback stand-in, not 192.168.1.40', async () => {
    const gw = 'first-example';
    const sub = await t.subscriber({ url: broker.url, topics: [`edge/${gw}/telemetry`] });
    const agent = startAgent([
      'simulate',
      '--config',
      join(process.cwd(), 'systemd/config.example.yaml'),
      '--broker',
      broker.url,
      '--gateway',
      gw,
      '--state-dir',
      join(dir, 'state'),
      '--window',
      '1000',
    ]);
    t.add(async () => {
      agent.kill('SIGTERM');
      await agent.exited();
    });
    const heatPump = () =>
      sub
        .on('/telemetry')
        .flatMap((m) => (m.json?.windows ?? []) as TelemetryWindow[])
        .filter((w) => w.sensor === 'heat-pump');
    // heat-pump is read every 10 s: its first reading arrives within one interval.
    await sub.waitFor(
      () => heatPump().some((w) => w.count > 0),
      40_000,
      'a heat-pump window with readings',
    );
    const w = heatPump().find((x) => x.count > 0)!;
    expect(w.faults).toBe(0);
    expect(w.mean).toBeGreaterThan(10);
    expect(w.mean).toBeLessThan(35);
    expect(agent.stdout()).toMatch(/Modbus TCP 192\.168\.1\.40:502 → 127\.0\.0\.1:\d+/);
  }, 90_000);
});
