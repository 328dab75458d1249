import { EXIT_USAGE, type OptionValues } from './common.js';

export async function simulateCommand(_values: OptionValues): Promise<number> {
  process.stderr.write('edge-agent simulate: not wired yet (pipeline integration pending)\n');
  return EXIT_USAGE;
}
