/**
 * The control socket on a real unix socket: requests and answers as lines of JSON, bounds,
 * malformed input, a socket left by a SIGKILLed process, a second agent, removal at stop.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CommandSet } from '../../../agent/control/command.js';
import { askAgent } from '../../../agent/control/control-client.js';
import { ControlEndpoint } from '../../../agent/control/control-endpoint.js';
import {
  CONTROL_SOCKET,
  ControlSocket,
  ControlSocketInUse,
  REQUEST_MAX_BYTES,
} from '../../../agent/control/control-socket.js';
import { describeFailure } from '../../../agent/commands/report-failure.js';
import { capturingLogger } from '../../helpers/logger.js';
import { useTeardown } from '../../helpers/teardown.js';
import { mountTmpfs, tmpfsUnavailable } from '../../helpers/tmpfs.js';
import { waitUntil } from '../../helpers/wait.js';

const t = useTeardown();
const noTmpfs = tmpfsUnavailable();
if (noTmpfs) console.log(`skipping the read-only card test of the control socket: ${noTmpfs}`);

function commands(): CommandSet {
  return new CommandSet().add({
    name: 'echo',
    summary: 'answers its text',
    args: z.object({ text: z.string().max(8) }).strict(),
    run: async ({ text }) => ({ text }),
  });
}

async function listen(dir: string, log = capturingLogger()): Promise<ControlSocket> {
  const socket = await ControlSocket.listen(dir, commands(), log.logger);
  expect(socket).toBeDefined();
  t.add(() => socket!.close());
  return socket!;
}

/** Send `text` on one connection; the answer lines until `answers` came or the socket closed. */
function exchange(path: string, text: string, answers: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let got = '';
    const lines = () => got.split('\n').filter((l) => l !== '');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out; got ${got}`));
    }, 10_000);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(lines());
    };
    socket.on('connect', () => socket.write(text));
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (lines().length >= answers) done();
    });
    socket.on('close', done);
    socket.on('error', reject);
  });
}

describe('ControlSocket', () => {
  it('answers each request line in order with its id; mode 0660; removed at close', async () => {
    const dir = t.tempDir('control-');
    const socket = await listen(dir);
    const path = join(dir, CONTROL_SOCKET);
    expect(statSync(path).mode & 0o777).toBe(0o660);
    const lines = await exchange(
      path,
      '{"id":1,"name":"echo","args":{"text":"a"}}\n{"id":"two","name":"echo","args":{"text":"b"}}\n',
      2,
    );
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { id: 1, ok: true, result: { text: 'a' } },
      { id: 'two', ok: true, result: { text: 'b' } },
    ]);
    expect(await askAgent(dir, 'echo', { text: 'c' })).toEqual({
      kind: 'answer',
      answer: { id: 1, ok: true, result: { text: 'c' } },
    });
    await socket.close();
    expect(existsSync(path)).toBe(false);
    expect(await askAgent(dir, 'echo', { text: 'c' })).toEqual({ kind: 'no-agent' });
  });

  it('a malformed line gets an error answer and the connection goes on; bad arguments are named', async () => {
    const dir = t.tempDir('control-');
    await listen(dir);
    const lines = await exchange(
      join(dir, CONTROL_SOCKET),
      'not json\n[1,2]\n{"id":3,"args":{}}\n{"id":4,"name":"echo","args":{"text":"far too long"}}\n{"id":5,"name":"echo","args":{"text":"ok"}}\n',
      5,
    );
    const answers = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(answers.map((a) => [a.id, (a.error as { code?: string } | undefined)?.code])).toEqual([
      [null, 'bad-request'],
      [null, 'bad-request'],
      [3, 'bad-request'],
      [4, 'bad-request'],
      [5, undefined],
    ]);
    expect((answers[2]!.error as { message: string }).message).toMatch(/name/);
    expect((answers[3]!.error as { message: string }).message).toMatch(/^echo: text: /);
    expect(answers[4]).toEqual({ id: 5, ok: true, result: { text: 'ok' } });
  });

  it('a line over the bound is answered too-large and the connection closed; the socket still answers', async () => {
    const dir = t.tempDir('control-');
    await listen(dir);
    const path = join(dir, CONTROL_SOCKET);
    const huge = `{"id":1,"name":"echo","args":{"text":"${'x'.repeat(REQUEST_MAX_BYTES)}"}}\n`;
    const lines = await exchange(path, huge, 1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ ok: false, error: { code: 'too-large' } });
    expect(await askAgent(dir, 'echo', { text: 'still' })).toMatchObject({
      answer: { ok: true, result: { text: 'still' } },
    });
  });

  it('replaces a socket left by a SIGKILLed process; refuses when another one answers there', async () => {
    const dir = t.tempDir('control-');
    const path = join(dir, CONTROL_SOCKET);
    // A process that listens there and is killed: its socket file stays, nobody accepts.
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
    ]);
    t.add(() => child.kill('SIGKILL'));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    expect(existsSync(path)).toBe(true);
    expect(await askAgent(dir, 'echo', { text: 'x' })).toEqual({ kind: 'no-agent' });

    await listen(dir);
    expect(await askAgent(dir, 'echo', { text: 'new' })).toMatchObject({
      answer: { ok: true, result: { text: 'new' } },
    });
    const second = await ControlSocket.listen(dir, commands(), capturingLogger().logger).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(second).toBeInstanceOf(ControlSocketInUse);
    // The operator reads one line naming the socket, no stack trace.
    expect(describeFailure(second, 'run', 'edge-agent run')).toEqual({
      code: 1,
      text: `edge-agent run: another agent answers on ${path}: two agents cannot share a state directory (stop the other one, or give this one its own --state-dir)\n`,
    });
    // The first one still answers.
    expect(await askAgent(dir, 'echo', { text: 'again' })).toMatchObject({
      answer: { ok: true },
    });
  });

  it('a file that is not a socket is left alone: the agent runs without the socket and says so', async () => {
    const dir = t.tempDir('control-');
    const path = join(dir, CONTROL_SOCKET);
    writeFileSync(path, 'not a socket');
    const log = capturingLogger();
    expect(await ControlSocket.listen(dir, commands(), log.logger)).toBeUndefined();
    await waitUntil(() => log.messages().some((m) => m.startsWith('control socket not started')), {
      what: 'the warning',
    });
    expect(statSync(path).isFile()).toBe(true);
  });
});

describe('ControlEndpoint: the socket tried again while the environment refuses it', () => {
  const quick = { minMs: 50, maxMs: 200 };

  it('a stray file on its path: the agent runs without the socket, and listens once the file is gone', async () => {
    const dir = t.tempDir('control-');
    const path = join(dir, CONTROL_SOCKET);
    writeFileSync(path, 'not a socket');
    const log = capturingLogger();
    const endpoint = t.own(await ControlEndpoint.open(dir, commands(), log.logger, quick));
    expect(endpoint.listening).toBe(false);
    expect(await askAgent(dir, 'echo', { text: 'x' })).toEqual({ kind: 'no-agent' });
    rmSync(path);
    await waitUntil(() => endpoint.listening, { what: 'the socket listening' });
    expect(await askAgent(dir, 'echo', { text: 'y' })).toMatchObject({
      answer: { ok: true, result: { text: 'y' } },
    });
    // Said once when it failed, once when it listens; the retries in between are quiet.
    const warned = log.records.filter((r) => r.level === 40 && /control socket/.test(r.msg));
    expect(warned).toHaveLength(1);
    expect(log.messages()).toContain(
      'control socket listening: edge-agent spool reaches this agent again',
    );
    await endpoint.close();
    expect(existsSync(path)).toBe(false);
  });

  it.skipIf(noTmpfs !== undefined)(
    'a state directory on a card mounted read-only at start: reachable once it is writable again',
    async () => {
      const fs = t.own(mountTmpfs(1024 * 1024));
      fs.remount('ro');
      const log = capturingLogger();
      const endpoint = t.own(await ControlEndpoint.open(fs.dir, commands(), log.logger, quick));
      expect(endpoint.listening).toBe(false);
      expect(
        log.records.find((r) => r.msg.startsWith('control socket not started'))?.error,
      ).toMatch(/EROFS/);
      fs.remount('rw');
      await waitUntil(() => endpoint.listening, { what: 'the socket listening' });
      expect(await askAgent(fs.dir, 'echo', { text: 'z' })).toMatchObject({
        answer: { ok: true, result: { text: 'z' } },
      });
    },
  );

  it('closed before the environment allows it: it stops trying and leaves no socket', async () => {
    const dir = t.tempDir('control-');
    const path = join(dir, CONTROL_SOCKET);
    writeFileSync(path, 'not a socket');
    const log = capturingLogger();
    const endpoint = await ControlEndpoint.open(dir, commands(), log.logger, quick);
    await endpoint.close();
    rmSync(path);
    // A later start on the directory listens: nothing of the closed endpoint holds the path.
    const next = t.own(await ControlEndpoint.open(dir, commands(), capturingLogger().logger));
    expect(next.listening).toBe(true);
    expect(log.messages()).not.toContain(
      'control socket listening: edge-agent spool reaches this agent again',
    );
  });
});
