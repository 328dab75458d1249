/**
 * The serial drivers through a real pseudo-terminal pair (socat) with the real serialport
 * package and its native binding: no mock anywhere. The test plays the device on the far
 * end. socat's `link=` gives stable paths, so killing socat is an unplug and starting it
 * again a replug.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sensorSchema, type SensorConfigOf } from '../../../drivers/registry.js';
import { createAsciiLine } from '../../../drivers/serial/ascii-line.js';
import { decodeReadRequest, encodeReadResponse } from '../../../drivers/modbus-pdu.js';
import { decodeRtuFrame, encodeRtuFrame } from '../../../drivers/serial/modbus-rtu-frame.js';
import { SerialLines } from '../../../drivers/serial/serial-lines.js';
import { sleep } from '../../../drivers/time.js';
import { ReadingStatus, type Reading } from '../../../drivers/types.js';
import { rig, runDriver, type Rig } from '../../helpers/run-driver.js';

const haveSocat = spawnSync('socat', ['-V']).status === 0;

let dir: string;
let socat: ChildProcess | undefined;
let far: SerialPort | undefined;
let lines: SerialLines | undefined;
let hardware: Rig | undefined;
const hostPath = () => join(dir, 'ttyHOST');
const devicePath = () => join(dir, 'ttyDEVICE');

/** Start socat and wait (bounded) until it reports both ptys. */
async function startSocat(): Promise<void> {
  const child = spawn(
    'socat',
    ['-d', '-d', `pty,raw,echo=0,link=${hostPath()}`, `pty,raw,echo=0,link=${devicePath()}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  socat = child;
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  for (let i = 0; i < 200 && !/starting data transfer loop/.test(err); i++) await sleep(25);
  if (!/starting data transfer loop/.test(err)) throw new Error(`socat did not start: ${err}`);
}

async function stopSocat(): Promise<void> {
  const child = socat;
  socat = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** The device end: a real SerialPort on the other pty. */
async function openFar(onData: (chunk: Buffer, port: SerialPort) => void): Promise<SerialPort> {
  const port = new SerialPort({ path: devicePath(), baudRate: 9600, autoOpen: false });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  port.on('data', (c: Buffer) => onData(c, port));
  port.on('error', () => undefined);
  far = port;
  return port;
}

/** A Modbus slave (unit 1, input registers 1 and 2) played by the test. */
function modbusSlave(registers: Record<number, number>) {
  let rx = Buffer.alloc(0);
  return (chunk: Buffer, port: SerialPort) => {
    rx = Buffer.concat([rx, chunk]);
    if (rx.length < 8) return;
    const frame = decodeRtuFrame(rx.subarray(0, 8));
    rx = rx.subarray(8);
    const req = decodeReadRequest(frame.pdu)!;
    const words = Array.from({ length: req.quantity }, (_, i) => registers[req.start + i] ?? 0);
    port.write(encodeRtuFrame(frame.unitId, encodeReadResponse(req.fn, words)));
  };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'edge-pty-'));
});

afterEach(async () => {
  await lines?.closeAll();
  lines = undefined;
  await hardware?.close();
  hardware = undefined;
  if (far?.isOpen) await new Promise((r) => far!.close(r));
  far = undefined;
  await stopSocat();
  rmSync(dir, { recursive: true, force: true });
});

const ok = (rs: Reading[]) => rs.filter((r) => r.status === ReadingStatus.Ok);

describe.skipIf(!haveSocat)('serial drivers over a real pty pair (socat)', () => {
  it('reads a Modbus RTU slave with the real serialport binding', async () => {
    await startSocat();
    await openFar(modbusSlave({ 1: 245, 2: 0xff90 }));
    // Built as the agent builds it: from the entry, over seams with the real binding.
    hardware = rig({ serial: SerialPort.binding });
    const driver = hardware.driver({
      id: 'pty',
      driver: 'modbus-rtu',
      port: hostPath(),
      registers: [
        { quantity: 'temperature', address: 1 },
        { quantity: 'humidity', address: 2 },
      ],
    });
    const { readings, faults } = await runDriver(driver, {
      until: (rs) => ok(rs).length >= 4,
    });
    expect(faults).toEqual([]);
    expect(readings.map((r) => r.value)).toEqual([24.5, -11.2, 24.5, -11.2]);
  });

  it('reads ASCII lines, counts garbage, and survives unplug and replug', async () => {
    await startSocat();
    const speak = (port: SerialPort) => {
      const timer = setInterval(() => port.isOpen && port.write('T=23.5\r\nnoise!\r\n'), 20);
      port.once('close', () => clearInterval(timer));
    };
    speak(await openFar(() => undefined));
    lines = new SerialLines(SerialPort.binding, undefined, { reopenMinMs: 20, reopenMaxMs: 200 });
    const config = sensorSchema.parse({
      id: 'pty',
      driver: 'ascii-line',
      port: hostPath(),
    }) as SensorConfigOf<'ascii-line'>;
    const driver = createAsciiLine(config, lines);
    let phase: 'before' | 'unplugged' | 'replugging' | 'replugged' = 'before';
    const { faults } = await runDriver(driver, {
      intervalMs: 20,
      ticks: 1000,
      timeoutMs: 300,
      onReading: (r, rs, fs) => {
        if (phase === 'before' && ok(rs).length >= 2) {
          phase = 'unplugged';
          if (far?.isOpen) far.close();
          void stopSocat();
        } else if (phase === 'unplugged' && fs.some((f) => f.code === 'DISCONNECTED')) {
          // The kernel reports the vanished pty (EIO) a little later than the kill: replug
          // once the driver has seen it.
          phase = 'replugging';
          void startSocat()
            .then(() => openFar(() => undefined))
            .then((p) => {
              speak(p);
              phase = 'replugged';
            });
        }
      },
      until: (rs) => phase === 'replugged' && rs[rs.length - 1].status === ReadingStatus.Ok,
    });
    expect(driver.counters.garbage).toBeGreaterThanOrEqual(1);
    expect(faults.map((f) => `${f.code}: ${f.message}`)).toContainEqual(
      expect.stringMatching(/^DISCONNECTED/),
    );
    expect(driver.counters.values).toBeGreaterThanOrEqual(3);
  });
});
