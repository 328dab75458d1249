/** The `dropped` note a batch carries in its header, as the telemetry schema describes it. */
import { describe, expect, it } from 'vitest';
import { assembleTelemetry } from '../../../agent/publish/payload.js';
import { mergeGap } from '../../../agent/publish/spool/gap-note.js';
import { schemaErrors, validateTelemetry } from './schemas.js';

const body = Buffer.from('{"windows":[]}');

describe('dropped note in the telemetry header', () => {
  it('is written when given and validates against the shipped schema', () => {
    const note = { count: 3, firstSeq: 7, lastSeq: 9, reason: 'lost-at-crash' };
    const out = JSON.parse(assembleTelemetry('gw', 10, 5, body, note).toString()) as Record<
      string,
      unknown
    >;
    expect(out).toMatchObject({ seq: 10, dropped: note, windows: [] });
    expect(schemaErrors(validateTelemetry, out)).toBe('');
    expect(validateTelemetry({ ...out, dropped: { count: 3 } })).toBe(false);
  });

  it('is absent when there is nothing to say, so the bytes are unchanged', () => {
    expect(assembleTelemetry('gw', 10, 5, body).toString()).not.toContain('dropped');
  });

  it('merges two drops: counts add, the range spans both, reasons listed once', () => {
    expect(
      mergeGap(
        { count: 2, firstSeq: 5, lastSeq: 6, reason: 'spool-bound' },
        { count: 1, firstSeq: 9, lastSeq: 9, reason: 'memory-bound' },
      ),
    ).toEqual({ count: 3, firstSeq: 5, lastSeq: 9, reason: 'spool-bound,memory-bound' });
    expect(
      mergeGap(
        { count: 1, firstSeq: 1, lastSeq: 1, reason: 'a' },
        { count: 1, firstSeq: 2, lastSeq: 2, reason: 'a' },
      ).reason,
    ).toBe('a');
  });
});
