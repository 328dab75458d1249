/** The running pipeline as the operator commands see it (AgentControl, agent-control.ts). */
import type { Config } from '../config/schema.js';
import type { HomeAssistantBridge } from '../consumers/homeassistant/bridge.js';
import type { SparkplugNode } from '../consumers/sparkplug/node.js';
import type { HealthReport } from '../publish/health.js';
import type { Sampler } from '../sampling/sampler.js';
import { CommandRefused } from './command.js';
import type { AgentControl, ReloadOutcome } from './agent-control.js';

export interface PipelineView {
  health(): HealthReport;
  config(): Config;
  configFile: string | undefined;
  /** The remote configuration version of the running file; null when never set remotely. */
  configVersion(): number | null;
  /** How to reload as SIGHUP does; undefined where there is no file to reload (simulate). */
  reloader(): (() => Promise<ReloadOutcome>) | undefined;
  sampler: Pick<Sampler, 'runningSensor'>;
  homeassistant: HomeAssistantBridge | undefined;
  sparkplug: SparkplugNode | undefined;
}

export function pipelineControl(p: PipelineView): AgentControl {
  return {
    health: () => p.health(),
    config: () => p.config(),
    configFile: () => p.configFile,
    configVersion: () => p.configVersion(),
    reload: () => {
      const reload = p.reloader();
      if (!reload) {
        return Promise.reject(
          new CommandRefused('this agent has no configuration file to reload (simulate)'),
        );
      }
      return reload();
    },
    sensor: (id) => {
      const s = p.sampler.runningSensor(id);
      return s ? { driver: s.driver, timeoutMs: s.timeoutMs } : undefined;
    },
    announce: async () => ({
      homeassistant: p.homeassistant ? await p.homeassistant.announceOnRequest() : null,
      sparkplug: p.sparkplug ? p.sparkplug.rebirth() : null,
    }),
  };
}
