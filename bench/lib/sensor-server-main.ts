/**
 * Entry of the simulated Modbus TCP gateway process (see sensor-server-process.ts): starts
 * the server, sends its port and the first `sensors` sensor configs over IPC, answers 'cpu'
 * with its own CPU use, and exits when the parent's IPC channel closes (no orphan server).
 */
import { startModbusTcpSensorServer } from '../../simulator/network/modbus-tcp-server.js';

const [delayMs, units, sensorsPerUnit, sensors] = process.argv.slice(2).map(Number);
const server = await startModbusTcpSensorServer({ delayMs, units, sensorsPerUnit });
process.send?.({
  port: server.port,
  sensors: Array.from({ length: sensors }, (_, i) => server.sensor(i)),
});
process.on('message', (m) => {
  if (m === 'cpu')
    process.send?.({ cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000 });
});
process.once('disconnect', () => void server.close().then(() => process.exit(0)));
