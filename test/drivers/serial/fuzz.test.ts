/** Bounded fuzzing: random bytes and lines must give values or counted faults, never throws. */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { sensorSchema, type SensorConfigOf } from '../../../drivers/registry.js';
import {
  createAsciiLine,
  LineSplitter,
  parseAsciiLine,
} from '../../../drivers/serial/ascii-line.js';
import { decodeReadResponse } from '../../../drivers/modbus-pdu.js';
import { createModbusRtu } from '../../../drivers/serial/modbus-rtu.js';
import { decodeRtuFrame, readReplyLength } from '../../../drivers/serial/modbus-rtu-frame.js';
import { SerialLines } from '../../../drivers/serial/serial-lines.js';
import { ReadingStatus, SensorError } from '../../../drivers/types.js';
import { SimulatedSerialBinding, type DevicePort } from '../../../simulator/serial/binding.js';
import { runDriver } from '../../helpers/run-driver.js';

const PATH = '/dev/ttyFUZZ';
let lines: SerialLines | undefined;
afterEach(async () => {
  await lines?.closeAll();
  lines = undefined;
});

/** Answers every request with the next canned reply (or nothing once they run out). */
class CannedReplies {
  constructor(private readonly replies: Uint8Array[]) {}
  receive(_bytes: Buffer, port: DevicePort): void {
    const next = this.replies.shift();
    if (next && next.length > 0) port.send(Buffer.from(next));
  }
}

describe('Modbus RTU parser fuzz', () => {
  it('throws nothing but SensorError on random frames', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 1, max: 125 }),
        (bytes, n) => {
          try {
            readReplyLength(bytes);
            const frame = decodeRtuFrame(bytes);
            const words = decodeReadResponse(frame.pdu, 4, n);
            expect(words).toHaveLength(n);
          } catch (e) {
            expect(e).toBeInstanceOf(SensorError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('turns random replies into readings or faults through the driver', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 4 }),
        async (replies) => {
          const binding = new SimulatedSerialBinding().add(PATH, new CannedReplies(replies));
          lines = new SerialLines(binding);
          const config = sensorSchema.parse({
            id: 'f',
            driver: 'modbus-rtu',
            port: PATH,
          }) as SensorConfigOf<'modbus-rtu'>;
          const driver = createModbusRtu(config, lines, { responseTimeoutMs: 30 });
          const { readings } = await runDriver(driver, {
            intervalMs: 1,
            ticks: replies.length,
            until: () => false,
          });
          for (const r of readings) {
            expect([ReadingStatus.Ok, ReadingStatus.Fault]).toContain(r.status);
            if (r.status === ReadingStatus.Fault) expect(r.value).toBeNaN();
            else expect(Number.isFinite(r.value)).toBe(true);
          }
          await lines.closeAll();
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('ASCII line parser fuzz', () => {
  const pattern = new RegExp(
    (
      sensorSchema.parse({
        id: 'a',
        driver: 'ascii-line',
        port: PATH,
      }) as SensorConfigOf<'ascii-line'>
    ).pattern,
  );

  it('classifies every random line without throwing', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (line) => {
        const r = parseAsciiLine(line, pattern);
        if (r.kind === 'value') expect(Number.isFinite(r.value)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('splits random byte chunks into bounded lines', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 20 }), (chunks) => {
        const s = new LineSplitter(64);
        for (const c of chunks) {
          for (const l of s.push(Buffer.from(c))) {
            expect(l.length).toBeGreaterThan(0);
            expect(l).not.toMatch(/[\r\n]/);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('turns a random byte stream into readings or faults through the driver', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 60 }), { minLength: 1, maxLength: 8 }),
        async (chunks) => {
          const device = {
            attach(port: DevicePort) {
              for (const c of chunks) port.send(Buffer.from(c));
            },
            receive() {},
          };
          lines = new SerialLines(new SimulatedSerialBinding().add(PATH, device));
          const config = sensorSchema.parse({
            id: 'a',
            driver: 'ascii-line',
            port: PATH,
            baudRate: 115200,
          }) as SensorConfigOf<'ascii-line'>;
          const { readings } = await runDriver(createAsciiLine(config, lines), {
            intervalMs: 5,
            ticks: 3,
            timeoutMs: 40,
            until: () => false,
          });
          expect(readings).toHaveLength(3);
          for (const r of readings)
            expect([ReadingStatus.Ok, ReadingStatus.Fault]).toContain(r.status);
          await lines.closeAll();
        },
      ),
      { numRuns: 25 },
    );
  });
});
