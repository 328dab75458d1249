/**
 * Node-RED 4.x doing the agent's job, for the footprint comparison: one `modbus-read` node
 * (node-red-contrib-modbus) per sensor polling the simulated gateway every second, a
 * function node keeping 10 s windows (count/min/max/mean/stddev/last per sensor and
 * quantity) that an inject node flushes every 10 s into one JSON message in the agent's
 * telemetry shape, and `mqtt out` at QoS 1 to the same broker. No spool: mqtt out queues in
 * memory only, so Node-RED keeps nothing across a crash.
 *
 * Installed by the bench with npm into a scratch directory (never a dependency of the
 * agent). node-red-contrib-modbus is pinned to 5.23.3: its later releases depend on a
 * modbus-serial fork served from outside the npm registry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sleep } from '../../drivers/time.js';
import type { SensorAddress } from './sensor-server-process.js';

export const NODE_RED_PACKAGES = ['node-red@4', 'node-red-contrib-modbus@5.23.3'];
/** The agent's old-space limit; Node-RED's own launcher sets none. */
export const NODE_RED_NODE_FLAGS = ['--max-old-space-size=256'];
const INSTALL_TIMEOUT_MS = 10 * 60_000;

export interface NodeRedInstall {
  dir: string;
  redJs: string;
  versions: Record<string, string>;
  /** Seconds npm took; 0 when the scratch dir already had both packages. */
  installSeconds: number;
}

function versionOf(dir: string, pkg: string): string | undefined {
  try {
    const json = readFileSync(path.join(dir, 'node_modules', pkg, 'package.json'), 'utf8');
    return (JSON.parse(json) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** npm install both packages into `dir` unless they are there; throws with npm's last words. */
export async function ensureNodeRed(dir: string): Promise<NodeRedInstall> {
  mkdirSync(dir, { recursive: true });
  const have = () => versionOf(dir, 'node-red') && versionOf(dir, 'node-red-contrib-modbus');
  let installSeconds = 0;
  if (!have()) {
    if (!existsSync(path.join(dir, 'package.json')))
      writeFileSync(
        path.join(dir, 'package.json'),
        '{ "name": "bench-node-red", "private": true }\n',
      );
    const t0 = performance.now();
    const npm = spawn(
      'npm',
      ['install', '--no-audit', '--no-fund', '--loglevel=error', ...NODE_RED_PACKAGES],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
    npm.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => npm.kill('SIGKILL'), INSTALL_TIMEOUT_MS);
    const code = await new Promise<number | null>((r) => npm.once('exit', (c) => r(c)));
    clearTimeout(timer);
    installSeconds = Math.round((performance.now() - t0) / 100) / 10;
    if (code !== 0 || !have()) {
      const last = out.trim().split('\n').slice(-4).join(' | ');
      throw new Error(`npm install ${NODE_RED_PACKAGES.join(' ')} failed (${code}): ${last}`);
    }
  }
  return {
    dir,
    redJs: path.join(dir, 'node_modules/node-red/red.js'),
    versions: {
      'node-red': versionOf(dir, 'node-red')!,
      'node-red-contrib-modbus': versionOf(dir, 'node-red-contrib-modbus')!,
    },
    installSeconds,
  };
}

/** The window keeper: one message per reading in, one telemetry message per flush out. */
const AGGREGATE = `
const w = context.get('w') || { start: Date.now(), series: {} };
if (msg.topic === '__flush') {
  const end = Date.now();
  const windows = [];
  for (const key of Object.keys(w.series)) {
    const a = w.series[key];
    const [sensor, quantity] = key.split('|');
    const mean = a.sum / a.count;
    windows.push({ sensor, quantity, unit: quantity === 'temperature' ? 'Cel' : '%RH',
      start: w.start, end, count: a.count, min: a.min, max: a.max, mean,
      stddev: Math.sqrt(Math.max(0, a.sq / a.count - mean * mean)), last: a.last, faults: 0 });
  }
  const seq = (context.get('seq') || 0) + 1;
  context.set('seq', seq);
  context.set('w', { start: end, series: {} });
  if (windows.length === 0) return null;
  return { topic: env.get('TELEMETRY_TOPIC'), payload: JSON.stringify({
    schema: 'edge-agent/telemetry/1', gateway: env.get('GATEWAY'), seq, createdAt: end, windows }) };
}
const quantities = ['temperature', 'humidity'];
for (let i = 0; i < quantities.length; i++) {
  let raw = msg.payload[i];
  if (raw > 32767) raw -= 65536;
  const v = raw / 10;
  const key = msg.topic + '|' + quantities[i];
  const a = w.series[key] || (w.series[key] = { count: 0, min: v, max: v, sum: 0, sq: 0, last: v });
  a.count++; a.sum += v; a.sq += v * v; a.last = v;
  if (v < a.min) a.min = v;
  if (v > a.max) a.max = v;
}
context.set('w', w);
return null;
`;

/** flows.json for `sensors` read through one Modbus TCP client, published to brokerPort. */
export function nodeRedFlows(options: {
  gateway: string;
  sensors: SensorAddress[];
  brokerPort: number;
  windowSec: number;
}): object[] {
  // Ids never equal a property value: Node-RED takes such a value for a config node reference.
  const tab = 'z-footprint';
  const flows: object[] = [
    { id: tab, type: 'tab', label: 'footprint', disabled: false },
    {
      id: 'cfg-modbus',
      type: 'modbus-client',
      name: 'gateway',
      clienttype: 'tcp',
      bufferCommands: true,
      stateLogEnabled: false,
      queueLogEnabled: false,
      failureLogEnabled: true,
      tcpHost: '127.0.0.1',
      tcpPort: String(options.sensors[0]?.port ?? 502),
      tcpType: 'DEFAULT',
      serialPort: '/dev/ttyUSB',
      serialType: 'RTU-BUFFERD',
      serialBaudrate: '9600',
      serialDatabits: '8',
      serialStopbits: '1',
      serialParity: 'none',
      serialConnectionDelay: '100',
      unit_id: 1,
      commandDelay: 1,
      clientTimeout: 1000,
      reconnectOnTimeout: true,
      reconnectTimeout: 2000,
      parallelUnitIdsAllowed: true,
    },
    {
      id: 'cfg-broker',
      type: 'mqtt-broker',
      name: 'bench broker',
      broker: '127.0.0.1',
      port: String(options.brokerPort),
      clientid: `node-red-${options.gateway}`,
      autoConnect: true,
      usetls: false,
      protocolVersion: '4',
      keepalive: '60',
      cleansession: true,
    },
    {
      id: 'n-aggregate',
      type: 'function',
      z: tab,
      name: 'windows',
      func: AGGREGATE,
      outputs: 1,
      wires: [['n-mqtt-out']],
    },
    {
      id: 'n-flush',
      type: 'inject',
      z: tab,
      name: 'flush',
      props: [{ p: 'topic', vt: 'str' }],
      topic: '__flush',
      repeat: String(options.windowSec),
      once: false,
      wires: [['n-aggregate']],
    },
    {
      id: 'n-mqtt-out',
      type: 'mqtt out',
      z: tab,
      name: 'telemetry',
      topic: '',
      qos: '1',
      retain: 'false',
      broker: 'cfg-broker',
      wires: [],
    },
  ];
  options.sensors.forEach((s, i) => {
    flows.push({
      id: `n-read-${i}`,
      type: 'modbus-read',
      z: tab,
      name: `net-${i}`,
      topic: `net-${i}`,
      showStatusActivities: false,
      logIOActivities: false,
      showErrors: false,
      unitid: String(s.unitId),
      dataType: 'HoldingRegister',
      adr: String(s.registers[0].address),
      quantity: String(s.registers.length),
      rate: '1',
      rateUnit: 's',
      delayOnStart: false,
      startDelayTime: '',
      server: 'cfg-modbus',
      useIOFile: false,
      ioFile: '',
      useIOForPayload: false,
      emptyMsgOnFail: false,
      wires: [['n-aggregate'], []],
    });
  });
  return flows;
}

export interface NodeRedProcess {
  child: ChildProcess;
  pid: number;
  /** Date.now() when Node-RED logged "Started flows"; undefined before. */
  startedAt(): number | undefined;
  output(): string;
  stop(): Promise<void>;
}

/** Start Node-RED on a user dir holding flows.json; the editor on a loopback port. */
export function startNodeRed(options: {
  install: NodeRedInstall;
  userDir: string;
  flows: object[];
  uiPort: number;
  env: Record<string, string>;
}): NodeRedProcess {
  mkdirSync(options.userDir, { recursive: true });
  writeFileSync(path.join(options.userDir, 'flows.json'), JSON.stringify(options.flows));
  // .cjs: the user dir may sit inside an ESM package ("type": "module").
  const settings = path.join(options.userDir, 'settings.cjs');
  writeFileSync(
    settings,
    `module.exports = ${JSON.stringify({
      uiHost: '127.0.0.1',
      uiPort: options.uiPort,
      flowFile: 'flows.json',
      credentialSecret: false,
      logging: { console: { level: 'info', metrics: false, audit: false } },
      telemetry: { enabled: false },
      diagnostics: { enabled: false },
    })};\n`,
  );
  const child = spawn(
    process.execPath,
    [
      ...NODE_RED_NODE_FLAGS,
      options.install.redJs,
      '--userDir',
      options.userDir,
      '--settings',
      settings,
    ],
    {
      cwd: options.userDir,
      env: { ...process.env, ...options.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let startedAt: number | undefined;
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
    if (startedAt === undefined && out.includes('Started flows')) startedAt = Date.now();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    pid: child.pid!,
    startedAt: () => startedAt,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
