/** Reading the primary host's STATE (Sparkplug 3.0): what counts, what is stale, what is not one. */
import { describe, expect, it } from 'vitest';
import { readHostState } from '../../../../agent/consumers/sparkplug/host-state.js';

const read = (text: string, lastAt = -Infinity) => readHostState(Buffer.from(text), lastAt);

describe('readHostState', () => {
  it('online and offline with their timestamp; a missing timestamp is the oldest possible', () => {
    expect(read('{"online":true,"timestamp":1700000000000}')).toEqual({
      kind: 'state',
      online: true,
      at: 1700000000000,
    });
    expect(read('{"online":false,"timestamp":5}', 5)).toEqual({
      kind: 'state',
      online: false,
      at: 5,
    });
    expect(read('{"online":true}')).toEqual({ kind: 'state', online: true, at: -Infinity });
  });

  it('older than the last one seen: stale, ignored', () => {
    expect(read('{"online":false,"timestamp":4}', 5)).toEqual({ kind: 'ignored' });
    expect(read('{"online":true}', 0)).toEqual({ kind: 'ignored' });
  });

  it('JSON that is not a STATE (null, a number, online not a boolean) is ignored, not a crash', () => {
    for (const text of ['null', '7', '"online"', '[]', '{"online":"yes"}', '{}']) {
      expect(read(text), text).toEqual({ kind: 'ignored' });
    }
  });

  it('not JSON at all: said apart, for a warning', () => {
    expect(read('ONLINE')).toEqual({ kind: 'not-json' });
    expect(read('')).toEqual({ kind: 'not-json' });
  });
});
