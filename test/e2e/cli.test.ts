import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAedes } from '../helpers/aedes.js';
import { sleep } from '../helpers/wait.js';
import type { EmbeddedBroker } from '../../simulator/broker.js';

// The built CLI (npm test builds first): what users and systemd actually run.
const CLI = join(process.cwd(), 'dist/agent/cli.js');
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });

describe('edge-agent CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-cli-'));

  it('check-config exits 0 on a valid file', () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(
      file,
      'gateway: { id: gw-1 }\nsensors:\n  - { id: t1, driver: tmp102, address: 0x48 }\n',
    );
    const r = cli('check-config', file);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ok');
  });

  it('check-config exits 2 with one line per problem and no stack trace', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'gateway: { id: "gw 1" }\nsensors:\n  - { id: a, driver: mcp9808, address: 0x80 }\n  - { id: a, driver: tmp102, adress: 0x48 }\n',
    );
    const r = cli('check-config', file);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe(`${file}: invalid configuration`);
    expect(lines).toContain('sensors[0].address: must be 0x18..0x1f, got 0x80');
    expect(lines).toContain('sensors[1].adress: unknown key (check the spelling)');
    expect(lines).toContain('sensors[1].id: duplicate sensor id "a" (also sensors[0].id)');
    expect(lines.some((l) => l.startsWith('gateway.id:'))).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('check-config exits 2 on a missing file or a YAML syntax error', () => {
    expect(cli('check-config', join(dir, 'nope.yaml')).status).toBe(2);
    const file = join(dir, 'syntax.yaml');
    writeFileSync(file, 'gateway:\n  id: x\n sensors: [\n');
    const r = cli('check-config', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/line 3, column 1/);
  });

  it('check-config says a syntax rule broken on every line of a non-YAML file once', () => {
    const file = join(dir, 'tabs.yaml');
    writeFileSync(file, '\tgateway: gw\n\tmqtt: x\n\tfoo: bar\n\tbaz: q\n');
    const r = cli('check-config', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n(syntax) line 1, column 1: Tabs are not allowed as indentation (also on lines 2, 3, 4)\n`,
    );
  });

  it('check-config and run refuse a 70,000-character mqtt.clientId, naming it', () => {
    const file = join(dir, 'long-client-id.yaml');
    writeFileSync(
      file,
      `gateway: { id: gw }\nmqtt: { url: "mqtt://127.0.0.1:1", clientId: "${'x'.repeat(70_000)}" }\n`,
    );
    for (const args of [
      ['check-config', file],
      ['run', '--config', file],
    ]) {
      const r = cli(...args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(
        'mqtt.clientId: must be at most 128 bytes of UTF-8, got 70000 bytes',
      );
    }
  });

  it('usage errors exit 2; --help exits 0 for every command', () => {
    expect(cli().status).toBe(2);
    expect(cli('frobnicate').status).toBe(2);
    expect(cli('check-config').status).toBe(2);
    expect(cli('simulate', '--duration', 'soon').status).toBe(2);
    expect(cli('run', '--bogus').status).toBe(2);
    for (const cmd of ['run', 'simulate', 'check-config', 'scan', 'tail']) {
      const r = cli(cmd, '--help');
      expect(r.status, cmd).toBe(0);
      expect(r.stdout).toContain(`usage: edge-agent ${cmd}`);
    }
  });

  it('run exits 1 with a plain message when the MQTT password file is unreadable', () => {
    const file = join(dir, 'run-nopw.yaml');
    writeFileSync(
      file,
      `gateway: { id: gw }\nmqtt: { url: "mqtt://127.0.0.1:1", passwordFile: ${join(dir, 'no-such-password')} }\n`,
    );
    const r = spawnSync(process.execPath, [CLI, 'run', '--config', file], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, STATE_DIRECTORY: join(dir, 'state-nopw') },
    });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('no-such-password');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('run exits 2 when the config is invalid', () => {
    const file = join(dir, 'run-bad.yaml');
    writeFileSync(file, 'gateway: {}\n');
    const r = cli('run', '--config', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('gateway.id: required');
  });
});

/** A stack frame or an error class name: what a user must never see for their mistake. */
const STACK = /\n\s+at |\b[A-Z][A-Za-z]*Error\b|ERR_[A-Z_]+/;

describe('edge-agent CLI: bad input and environment faults give one plain line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-cli-env-'));
  // Readable by the unprivileged user the EACCES tests run the CLI as.
  chmodSync(dir, 0o755);
  let broker: EmbeddedBroker;
  beforeAll(async () => {
    broker = await startAedes();
  });
  afterAll(() => broker.close());

  const config = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text, { mode: 0o644 });
    return file;
  };
  const agent = (
    args: string[],
    options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {},
  ) =>
    spawnSync(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, STATE_DIRECTORY: join(dir, 'state-default'), ...options.env },
      uid: options.uid,
      gid: options.gid,
    });
  /** The last non-empty stderr line, and that there is only a small number of lines. */
  const plainFailure = (r: ReturnType<typeof agent>, code: number) => {
    expect(r.status, r.stdout + r.stderr).toBe(code);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stderr.trim().split('\n').length, r.stderr).toBeLessThanOrEqual(3);
    return r.stderr.trim();
  };

  it('check-config accepts a YAML file that reuses an anchor on 150 sensors', () => {
    const sensors = Array.from(
      { length: 150 },
      (_, i) =>
        `  - { id: s${i}, driver: http-json, url: ${i === 0 ? '&u http://127.0.0.1:8080/t' : '*u'}, path: t${i} }`,
    );
    const file = config(
      'aliases.yaml',
      ['gateway: { id: gw }', 'sensors:', ...sensors, ''].join('\n'),
    );
    const r = agent(['check-config', file]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('150 sensors enabled');
  });

  it('check-config refuses a billion-laughs file in one line', () => {
    const levels = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 10; i++) {
      levels.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    }
    const file = config('laughs.yaml', ['gateway: { id: gw }', ...levels, ''].join('\n'));
    const r = agent(['check-config', file]);
    expect(plainFailure(r, 2)).toMatch(/alias/i);
  });

  it('check-config reports a YAML mapping used as a key without a Node warning', () => {
    const file = config('complex-key.yaml', 'gateway: { id: gw }\n? [a, b]\n: 1\n');
    const r = agent(['check-config', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n["[ a, b ]"]: unknown key (check the spelling)\n`,
    );
  });

  it('check-config warns on stderr about a config without enabled sensors, and exits 0', () => {
    const none = agent(['check-config', config('none.yaml', 'gateway: { id: gw }\n')]);
    expect(none.status).toBe(0);
    expect(none.stderr).toMatch(/^warning: sensors: no enabled sensors/m);
    const off = agent([
      'check-config',
      config(
        'off.yaml',
        'gateway: { id: gw }\nsensors:\n  - { id: t, driver: tmp102, enabled: false }\n',
      ),
    ]);
    expect(off.status).toBe(0);
    expect(off.stderr).toMatch(/^warning: sensors: no enabled sensors/m);
  });

  it('run with the metrics port in use exits 1 naming metrics.port', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const file = config(
        'metrics-busy.yaml',
        `gateway: { id: gw }\nmqtt: { url: "${broker.url}" }\nmetrics: { enabled: true, port: ${port} }\n`,
      );
      const r = await new Promise<{ status: number | null; stderr: string; stdout: string }>(
        (resolve) => {
          // Async spawn: the port is held by this process, which must keep serving its loop.
          const child = spawn(process.execPath, [CLI, 'run', '--config', file], {
            env: { ...process.env, STATE_DIRECTORY: join(dir, 'state-metrics') },
          });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('exit', (status) => resolve({ status, stdout, stderr }));
        },
      );
      expect(r.status, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).not.toMatch(STACK);
      expect(r.stderr).toMatch(new RegExp(`metrics\\.port.*${port}.*in use`));
    } finally {
      taken.close();
    }
  });

  it('run with a metrics.host that is not an address exits 2 naming metrics.host', () => {
    const file = config(
      'metrics-host.yaml',
      `gateway: { id: gw }\nmqtt: { url: "${broker.url}" }\nmetrics: { enabled: true, host: no-such-host.invalid, port: 1 }\n`,
    );
    expect(plainFailure(agent(['run', '--config', file]), 2)).toMatch(/^metrics\.host: /m);
  });

  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const lockedParent = join(dir, 'locked');
  mkdirSync(lockedParent, { mode: 0o555 });

  it('run with a state directory it may not create exits 1 naming the directory', () => {
    const file = config('eacces.yaml', `gateway: { id: gw }\nmqtt: { url: "${broker.url}" }\n`);
    const stateDir = join(lockedParent, 'state');
    const r = agent(['run', '--config', file], { env: { STATE_DIRECTORY: stateDir }, ...asNobody });
    expect(plainFailure(r, 1)).toContain(stateDir);
  });

  it('run with a state directory where the file system refuses one (/proc) exits 1', () => {
    // Node's recursive mkdir spins forever here, deaf to SIGTERM: SIGKILL bounds the old code.
    const file = config(
      'proc-state.yaml',
      `gateway: { id: gw }\nmqtt: { url: "${broker.url}" }\nspool: { dir: /proc/edge-agent-state }\n`,
    );
    const r = spawnSync(process.execPath, [CLI, 'run', '--config', file], {
      encoding: 'utf8',
      timeout: 20_000,
      killSignal: 'SIGKILL',
    });
    expect(plainFailure(r, 1)).toContain('/proc/edge-agent-state');
  });

  it('simulate with a state directory it may not create exits 1 naming the directory', () => {
    const stateDir = join(lockedParent, 'sim-state');
    const r = agent(
      ['simulate', '--broker', broker.url, '--state-dir', stateDir, '--duration', '1'],
      asNobody,
    );
    expect(plainFailure(r, 1)).toContain(stateDir);
  });
});

describe('edge-agent CLI: SIGTERM during start-up', () => {
  let broker: EmbeddedBroker;
  const dir = mkdtempSync(join(tmpdir(), 'edge-cli-term-'));
  beforeAll(async () => {
    broker = await startAedes();
  });
  afterAll(() => broker.close());

  // The config is a FIFO: once this test can open it for writing, the agent's JavaScript is
  // running and reading its config, so each signal below arrives during start-up, not before
  // Node itself has started (which no program can handle).
  it.each([
    ['run', 0],
    ['run', 20],
    ['run', 60],
    ['run', 150],
    ['simulate', 0],
    ['simulate', 60],
  ])(
    '%s: a SIGTERM %i ms after the config is read ends in a clean stop with exit 0',
    async (command, delayMs) => {
      const fifo = join(dir, `config-${command}-${delayMs}.yaml`);
      spawnSync('mkfifo', [fifo]);
      const args =
        command === 'run'
          ? ['run', '--config', fifo]
          : [
              'simulate',
              '--config',
              fifo,
              '--broker',
              broker.url,
              '--state-dir',
              join(dir, `sim-${delayMs}`),
            ];
      const child = spawn(process.execPath, [CLI, ...args], {
        env: { ...process.env, STATE_DIRECTORY: join(dir, `state-${delayMs}`) },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal })),
      );
      // Opening a FIFO for writing waits for its reader; an agent that dies first must not
      // leave this test waiting: open the read end here to release the writer, then fail.
      const diedFirst = exited.then((end) => {
        closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
        return end;
      });
      const writer = await Promise.race([open(fifo, 'w'), diedFirst]);
      if (!('writeFile' in writer)) {
        throw new Error(
          `agent ended before reading its config: ${JSON.stringify(writer)}\n${stderr}`,
        );
      }
      await writer.writeFile(
        `gateway: { id: gw }\nmqtt: { url: "${broker.url}" }\n${command === 'simulate' ? 'sensors:\n  - { id: t, driver: tmp102 }\n' : ''}`,
      );
      await writer.close();
      if (delayMs > 0) await sleep(delayMs);
      child.kill('SIGTERM');
      const end = await exited;
      expect(end, stdout + stderr).toEqual({ code: 0, signal: null });
      expect(stderr).not.toMatch(STACK);
      // Either the pipeline ran and was drained, or the stop came before anything started.
      expect(stdout).toMatch(/"msg":"(pipeline stopped|stop requested during start-up[^"]*)"/);
      // run's config has no sensors: the warning check-config prints is logged too.
      if (command === 'run') expect(stdout).toContain('"msg":"sensors: no enabled sensors');
    },
  );
});

describe('edge-agent CLI: state files are private whatever the umask', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-cli-umask-'));
  const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

  it('simulate under umask 000: the state dir it creates is 0700, the spool files 0600', async () => {
    const state = join(dir, 'parent', 'state');
    // The embedded broker (no --broker) runs in the agent, not in this test's event loop.
    const child = spawn(
      'sh',
      [
        '-c',
        'umask 000 && exec "$@"',
        'sh',
        process.execPath,
        CLI,
        'simulate',
        '--state-dir',
        state,
        '--duration',
        '1',
        '--sparkplug',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, output).toBe(0);
    expect({
      parent: mode(join(dir, 'parent')),
      state: mode(state),
      spool: mode(join(state, 'spool.sqlite')),
      mark: mode(join(state, 'spool.seq')),
      sparkplug: mode(join(state, 'sparkplug')),
      sparkplugSpool: mode(join(state, 'sparkplug', 'spool.sqlite')),
      bdSeq: mode(join(state, 'sparkplug', 'bdseq')),
    }).toEqual({
      parent: '755',
      state: '700',
      spool: '600',
      mark: '600',
      sparkplug: '700',
      sparkplugSpool: '600',
      bdSeq: '600',
    });
  });
});
