import { readFileSync } from 'node:fs';

/**
 * Resident memory of this process in bytes, for the health report and the live view.
 *
 * Node's figure (process.memoryUsage.rss(), from /proc/self/stat on Linux) is 0 under
 * qemu-user, which emulates that file with most fields zero, as when an arm64 or armhf
 * build is tried on a PC. /proc/self/status is passed through there, so VmRSS is the
 * fallback; 0 only when neither tells.
 */
export function residentSetBytes(): number {
  const rss = process.memoryUsage.rss();
  return rss > 0 ? rss : (statusRss() ?? 0);
}

function statusRss(): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    // Not Linux, or /proc is not mounted: no second source.
    return undefined;
  }
}
