/**
 * `config/set`: a signed whole config, checked, written atomically, applied in this process
 * and kept only if it proves itself within the probation (docs/remote-config.md). Every
 * refusal throws CommandRefused before anything is written; the replay guard (highest
 * version) is raised before the file changes and never lowered, not even by a rollback.
 */
import { readFileSync } from 'node:fs';
import { CommandRefused } from '../control/command.js';
import { ConfigError, parseConfigText, validateConfig } from '../config/load.js';
import { resolveConfigPaths } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../ops/logger.js';
import type { ConfigIdentity } from '../publish/health.js';
import { writeFileAtomic } from './atomic-file.js';
import { ConfigStore, hashOf, type ConfigState } from './config-store.js';
import { awaitProbation, probationVerdict } from './probation.js';
import { previousPathOf } from './recover.js';
import { remoteConfigProblems } from './remote-rules.js';
import { verifySignedConfig, type SignedConfig } from './signed-config.js';
import type { ApplyKind, PipelineSupervisor } from './supervisor.js';
import { StateAnnouncer } from './state-announcer.js';
import { loadTrustedKeys, TrustedKeysError } from './trusted-keys.js';

export interface RemoteConfigOptions {
  configFile: string;
  /** The text the running config was read from (the file is not read again: it may be a FIFO). */
  configText: string;
  stateDir: string;
  logger: Logger;
  /** systemd's $CREDENTIALS_DIRECTORY; files a remote config names may lie there. */
  credentialsDir: string | undefined;
  /** Poll period of the probation checks. */
  pollMs?: number;
  /**
   * The previous config did not start again after a rollback: the process has no pipeline.
   * `run` ends the process (the service manager restarts it on the previous file, which is
   * back); by default the error is thrown to the command.
   */
  onUnrecoverable?: (err: unknown) => void;
}

/** The answer of a config/set that was carried out. */
export interface SetOutcome {
  status: 'applied' | 'rolled-back';
  version: number;
  hash: string;
  /** How the new config ran: sensors reloaded, or a new pipeline. */
  applied: ApplyKind | null;
  reason: string | null;
}

const MAX_PROBLEMS_SHOWN = 5;

export class RemoteConfig {
  private supervisor: PipelineSupervisor | undefined;
  private readonly store: ConfigStore;
  private readonly announcer: StateAnnouncer;
  private inProgress: number | undefined;
  private stopping = false;
  private state: ConfigState;

  constructor(private readonly opts: RemoteConfigOptions) {
    this.store = new ConfigStore(opts.stateDir);
    this.announcer = new StateAnnouncer(() => this.running(), opts.logger);
    const fileHash = hashOf(opts.configText);
    const saved = this.store.state();
    // A file edited on the gateway since is the local file's, whatever was pushed before.
    const version = saved?.hash === fileHash ? saved.version : null;
    this.state = saved
      ? { ...saved, version, hash: fileHash }
      : {
          schema: 'edge-agent/config-state/1',
          gateway: '',
          version: null,
          hash: fileHash,
          appliedAt: null,
          status: 'applied',
          reason: null,
          request: null,
        };
  }

  /** Starts announcing the state on the supervisor's pipeline. */
  attach(supervisor: PipelineSupervisor): void {
    this.supervisor = supervisor;
    this.state = { ...this.state, gateway: supervisor.currentConfig.gateway.id };
    this.announce();
  }

  private running(): PipelineSupervisor {
    if (!this.supervisor) throw new Error('remote configuration used before the pipeline ran');
    return this.supervisor;
  }

  identity(): ConfigIdentity {
    return { version: this.state.version, hash: this.state.hash };
  }

  currentState(): ConfigState {
    return this.state;
  }

  /** Retained on `<prefix>/<gw>/config/state`; nothing is published while the feature is off. */
  private announce(): void {
    const { mqtt, gateway, fleet } = this.running().currentConfig;
    if (!fleet.remoteConfig.enabled) return;
    this.announcer.announce(`${mqtt.topicPrefix}/${gateway.id}/config/state`, this.state);
  }

  private record(state: Partial<ConfigState>): void {
    this.state = { ...this.state, ...state };
    this.store.saveState(this.state);
    this.announce();
  }

  /**
   * A refusal is announced but not written to the state directory: anyone who may publish a
   * request could otherwise make the gateway write its SD card at the rate limit.
   */
  private refuse(reason: string, request: ConfigState['request']): never {
    this.opts.logger.warn({ reason, version: request?.version }, 'config/set refused');
    this.state = { ...this.state, status: 'rejected', reason, request };
    this.announce();
    throw new CommandRefused(reason);
  }

  /** Checks, writes, applies and proves `envelope`; throws CommandRefused for a refusal. */
  async set(envelope: unknown): Promise<SetOutcome> {
    const running = this.running().currentConfig;
    const settings = running.fleet.remoteConfig;
    if (!settings.enabled) {
      throw new CommandRefused(
        'remote configuration is off on this gateway (fleet.remoteConfig.enabled)',
      );
    }
    if (this.inProgress !== undefined) {
      throw new CommandRefused(`version ${this.inProgress} is being applied; try again after it`);
    }
    let keys;
    try {
      keys = loadTrustedKeys(settings.trustedKeysDir);
    } catch (err) {
      if (err instanceof TrustedKeysError) this.refuse(err.message, null);
      throw err;
    }
    const self = { gateway: running.gateway.id, group: running.fleet.group };
    const verdict = verifySignedConfig(envelope, keys, self, this.store.highestVersion());
    const signed = envelope as SignedConfig;
    const request =
      verdict.ok || verdict.code !== 'malformed'
        ? { version: signed.version, hash: hashOf(signed.document) }
        : null;
    if (!verdict.ok) this.refuse(verdict.reason, request);
    const next = this.check(signed.document, running, request);
    this.inProgress = signed.version;
    try {
      return await this.apply(signed, next, running);
    } finally {
      this.inProgress = undefined;
    }
  }

  /** The document as the agent will run it, or a refusal naming what is wrong. */
  private check(document: string, running: Config, request: ConfigState['request']): Config {
    let next: Config;
    try {
      const file = this.opts.configFile;
      next = resolveConfigPaths(validateConfig(parseConfigText(document, file), file), file);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.refuse(`invalid configuration: ${shortList(err.problems)}`, request);
    }
    const problems = remoteConfigProblems(next, running, {
      credentialsDir: this.opts.credentialsDir,
    });
    if (problems.length > 0) {
      this.refuse(`not allowed remotely: ${shortList(problems)}`, request);
    }
    return next;
  }

  private async apply(signed: SignedConfig, next: Config, running: Config): Promise<SetOutcome> {
    const { configFile, logger } = this.opts;
    const hash = hashOf(signed.document);
    const previousText = readFileSync(configFile, 'utf8');
    const previousVersion = this.state.version;
    try {
      writeFileAtomic(previousPathOf(configFile), previousText);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      this.refuse(
        `cannot write next to ${configFile} (${code}); the config file must be in a directory the agent may write (docs/remote-config.md)`,
        { version: signed.version, hash },
      );
    }
    // Durable before the file changes: the same envelope is never accepted twice.
    this.store.raiseHighestVersion(signed.version);
    this.store.startProbation({
      version: signed.version,
      hash,
      previousHash: hashOf(previousText),
      previousVersion,
      startedAt: Date.now(),
    });
    try {
      writeFileAtomic(configFile, signed.document);
    } catch (err) {
      // The old file is whole (the rename did not happen): nothing to roll back.
      this.store.endProbation();
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      this.refuse(`cannot replace ${configFile} (${code}); the running config stays`, {
        version: signed.version,
        hash,
      });
    }
    logger.info({ version: signed.version, hash }, 'config/set: new config written; on probation');
    const request = { version: signed.version, hash };
    let applied: ApplyKind | null = null;
    let failure: string | undefined;
    try {
      applied = await this.running().apply(next);
    } catch (err) {
      failure = `the new config did not start: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (failure === undefined) {
      const supervisor = this.running();
      const verdict = await awaitProbation(
        () => probationVerdict(supervisor.health(), supervisor.currentConfig),
        running.fleet.remoteConfig.probationMs,
        () => this.stopping,
        this.opts.pollMs,
      );
      if (verdict.ok) {
        this.store.endProbation();
        const appliedAt = Date.now();
        this.record({
          version: signed.version,
          hash,
          appliedAt,
          status: 'applied',
          reason: null,
          request,
        });
        logger.info({ version: signed.version, hash }, 'config/set: new config confirmed');
        return { status: 'applied', version: signed.version, hash, applied, reason: null };
      }
      failure = verdict.reason;
    }
    await this.rollBack(previousText, running, failure);
    this.record({ status: 'rolled-back', reason: failure, request });
    return { status: 'rolled-back', version: signed.version, hash, applied, reason: failure };
  }

  /** Puts the previous file back and runs the previous config again. */
  private async rollBack(previousText: string, previous: Config, reason: string): Promise<void> {
    const { configFile, logger } = this.opts;
    logger.warn({ reason }, 'config/set: rolling back to the previous config');
    writeFileAtomic(configFile, previousText);
    // The previous file is back whatever happens next: a restart runs it.
    this.store.endProbation();
    try {
      await this.running().apply(previous);
    } catch (err) {
      if (this.stopping) return;
      logger.fatal({ err }, 'config/set: the previous config did not start again');
      if (!this.opts.onUnrecoverable) throw err;
      this.opts.onUnrecoverable(err);
    }
  }

  /** SIGTERM: a probation under way ends in a rollback. */
  stop(): void {
    this.stopping = true;
    this.announcer.stop();
  }
}

function shortList(problems: readonly string[]): string {
  const shown = problems.slice(0, MAX_PROBLEMS_SHOWN).join('; ');
  const more = problems.length - MAX_PROBLEMS_SHOWN;
  return more > 0 ? `${shown}; and ${more} more` : shown;
}
