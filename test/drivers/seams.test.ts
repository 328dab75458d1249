import { describe, expect, it } from 'vitest';
import { hardwareSeams } from '../../drivers/seams.js';
import { nullLogger } from '../../drivers/types.js';

describe('hardwareSeams', () => {
  it('reaches the real serial binding, loaded on first use, when a port is opened', async () => {
    const seams = await hardwareSeams(nullLogger);
    try {
      const binding = seams.openers.serialBinding;
      // The native binding's own error for a port that does not exist comes through.
      await expect(
        binding.open({ path: '/dev/edge-agent-no-such-port', baudRate: 9600 }),
      ).rejects.toThrow(/no-such-port|ENOENT|No such file/i);
    } finally {
      await seams.close();
    }
  });
});
