import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { arglessCommand, CommandRefused, CommandSet } from '../../../agent/control/command.js';

function commands(): CommandSet {
  return new CommandSet()
    .add({
      name: 'echo',
      summary: 'answers its text',
      args: z.object({ text: z.string().max(8) }).strict(),
      run: async ({ text }) => ({ text }),
    })
    .add({
      name: 'guarded',
      summary: 'refuses remote requests',
      args: z.object({}).strict(),
      run: async (_args, { origin }) => {
        if (origin === 'remote') throw new CommandRefused('local only');
        return 'done';
      },
    })
    .add({
      name: 'broken',
      summary: 'fails',
      args: z.object({}).strict(),
      run: async () => {
        throw new Error('disk on fire');
      },
    });
}

describe('CommandSet', () => {
  it('runs a known command with valid arguments', async () => {
    expect(await commands().handle('echo', { text: 'hi' }, { origin: 'local' })).toEqual({
      ok: true,
      result: { text: 'hi' },
    });
  });

  it('answers an unknown command with the names it knows', async () => {
    const answer = await commands().handle('nope', {}, { origin: 'remote' });
    expect(answer).toMatchObject({ ok: false, error: { code: 'unknown-command' } });
    expect(!answer.ok && answer.error.message).toContain('broken, echo, guarded');
  });

  it('names the argument that is wrong', async () => {
    const answer = await commands().handle('echo', { text: 'far too long' }, { origin: 'local' });
    expect(answer).toMatchObject({ ok: false, error: { code: 'bad-request' } });
    expect(!answer.ok && answer.error.message).toMatch(/^echo: text: /);
    const extra = await commands().handle('echo', { text: 'a', more: 1 }, { origin: 'local' });
    expect(extra).toMatchObject({ ok: false, error: { code: 'bad-request' } });
  });

  it('turns a refusal and a failure into answers', async () => {
    const set = commands();
    expect(await set.handle('guarded', {}, { origin: 'local' })).toEqual({
      ok: true,
      result: 'done',
    });
    expect(await set.handle('guarded', {}, { origin: 'remote' })).toEqual({
      ok: false,
      error: { code: 'refused', message: 'guarded: local only' },
    });
    expect(await set.handle('broken', undefined, { origin: 'local' })).toEqual({
      ok: false,
      error: { code: 'failed', message: 'broken failed: disk on fire' },
    });
  });

  it('runs a command without arguments, and names an argument given to it', async () => {
    const set = new CommandSet().add(arglessCommand('ping', 'answers pong', async () => 'pong'));
    expect(await set.handle('ping', undefined, { origin: 'remote' })).toEqual({
      ok: true,
      result: 'pong',
    });
    const extra = await set.handle('ping', { sensor: 'x' }, { origin: 'remote' });
    expect(extra).toMatchObject({ ok: false, error: { code: 'bad-request' } });
    expect(!extra.ok && extra.error.message).toMatch(/^ping: .*sensor/);
  });

  it('refuses to add a name twice', () => {
    const set = commands();
    expect(() =>
      set.add({ name: 'echo', summary: '', args: z.object({}), run: async () => null }),
    ).toThrow(/twice/);
  });
});
