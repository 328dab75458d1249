import { loadConfigFile } from '../config/load.js';
import { EXIT_OK } from './common.js';

/** `edge-agent check-config FILE`: exit 0 when valid; ConfigError → exit 2 via the CLI. */
export async function checkConfigCommand(file: string): Promise<number> {
  const config = loadConfigFile(file);
  const enabled = config.sensors.filter((s) => s.enabled).length;
  process.stdout.write(`${file}: ok (gateway ${config.gateway.id}, ${enabled} sensors enabled)\n`);
  return EXIT_OK;
}
