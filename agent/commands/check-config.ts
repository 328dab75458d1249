import { configWarnings, loadConfigFile } from '../config/load.js';
import { EXIT_OK, type CommandOutput } from './common.js';

/**
 * `edge-agent check-config FILE`: exit 0 when valid (warnings, if any, on stderr);
 * ConfigError → exit 2 via the CLI.
 */
export async function checkConfigCommand(file: string, output: CommandOutput): Promise<number> {
  const config = loadConfigFile(file);
  for (const warning of configWarnings(config)) output.stderr(`warning: ${warning}\n`);
  const enabled = config.sensors.filter((s) => s.enabled).length;
  output.stdout(`${file}: ok (gateway ${config.gateway.id}, ${enabled} sensors enabled)\n`);
  return EXIT_OK;
}
