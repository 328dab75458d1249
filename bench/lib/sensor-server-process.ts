/**
 * The simulated Modbus TCP gateway (simulator/network/modbus-tcp-server.ts) in a process of
 * its own, so the measured agent's (or Node-RED's) CPU, memory and disk figures hold none of
 * the simulator's. Runs from .ts sources through tsx or from the built .js.
 */
import { fork } from 'node:child_process';
import type { ModbusTcpSensorServer } from '../../simulator/network/modbus-tcp-server.js';

export type SensorAddress = ReturnType<ModbusTcpSensorServer['sensor']>;

export interface SensorServerProcess {
  pid: number;
  port: number;
  /** Where sensor i lives, shaped like the modbus-tcp config keys. */
  sensors: SensorAddress[];
  close(): Promise<void>;
}

export async function startSensorServerProcess(options: {
  delayMs: number;
  units: number;
  sensorsPerUnit: number;
  sensors: number;
}): Promise<SensorServerProcess> {
  const self = new URL(import.meta.url);
  const ext = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  const main = new URL(`./sensor-server-main${ext}`, self);
  const child = fork(
    main,
    [options.delayMs, options.units, options.sensorsPerUnit, options.sensors].map(String),
    {
      execArgv: ext === '.ts' ? ['--import', 'tsx'] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const hello = await new Promise<{ port: number; sensors: SensorAddress[] }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the sensor server process did not start within 30 s'));
    }, 30_000);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as { port: number; sensors: SensorAddress[] });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the sensor server process exited (${code}) before it listened`));
    });
  });
  return {
    pid: child.pid!,
    port: hello.port,
    sensors: hello.sensors,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.disconnect();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
