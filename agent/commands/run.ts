import { EXIT_USAGE, type OptionValues } from './common.js';

export async function runCommand(_values: OptionValues): Promise<number> {
  process.stderr.write('edge-agent run: not wired yet (pipeline integration pending)\n');
  return EXIT_USAGE;
}
