import type { Config } from '../../platform/config.js';
import type { Logger } from '../../platform/log.js';
import type { AppStore } from '../../platform/store.js';
import type { BuildpackService } from '../../hooks/buildpack-service.js';
import type { SshKeyStore } from '../ssh-keys.js';

/** How a command talks to whoever ran it: the local CLI over the socket, or an SSH channel. */
export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  /** The caller's standard input, read to the end (for `ssh-keys:add name -`). */
  readStdin(): Promise<string>;
  /** Standard input as bytes, up to `limit` (over SSH only: `buildpacks:install - < bp.tgz`). */
  readStdinBytes?(limit: number): Promise<Buffer>;
  /** Aborted when the caller goes away (for `logs --follow`). */
  signal: AbortSignal;
  /** Who asked: `cli` for the local admin, else the SSH key or token name. */
  actor: string;
}

export interface ProcessInfo {
  name: string;
  type: string;
  index: number;
  state: string;
  release: number | null;
  hostPort: number | null;
}

export interface StatusInfo {
  daemon: 'running';
  docker: string;
  router: 'running' | 'stopped';
  ssh: string;
  http: string;
  stackImage: string;
  apps: number;
}

/**
 * What the command layer needs from the platform. The daemon implements it; the commands stay
 * free of Docker and git details, and tests can drive them with the real daemon.
 */
export interface Platform {
  config: Config;
  logger: Logger;
  apps: AppStore;
  keys: SshKeyStore;
  buildpacks: BuildpackService;
  status(): Promise<StatusInfo>;
  createApp(name: string): Promise<void>;
  destroyApp(name: string, progress: (line: string) => void): Promise<void>;
  processes(app: string): Promise<ProcessInfo[]>;
  buildStack(progress: (line: string) => void): Promise<string>;
}

export type FlagSpec = Record<string, { type: 'boolean' | 'string'; short?: string; multiple?: boolean }>;

export interface Parsed {
  positionals: string[];
  flags: Record<string, string | boolean | string[] | undefined>;
}

export interface Command {
  name: string;
  /** Arguments after the name, as shown in help: `<app> [--force]`. */
  usage: string;
  summary: string;
  flags?: FlagSpec;
  /** Inclusive bounds on positional arguments. */
  args: [min: number, max: number];
  run(io: CommandIO, parsed: Parsed, platform: Platform): Promise<number | void>;
}
