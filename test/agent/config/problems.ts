import { ConfigError, validateConfig } from '../../../agent/config/load.js';

/** The problem lines validateConfig reports for input, one per mistake; [] when it is valid. */
export function configProblems(input: unknown): string[] {
  try {
    validateConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}
