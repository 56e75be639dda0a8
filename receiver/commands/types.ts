import type { Config } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import type { AppStore, BuildRecord } from '../../core/store.js';
import type { Operations } from '../../services/operations.js';
import type { MirrorAdmin } from '../../services/mirror-admin.js';
import type { BuildpackService } from '../../services/buildpack-service.js';
import type { ServiceManager } from '../../services/service-manager.js';
import type { SshKeyStore } from '../ssh-keys.js';
import type { TokenStore } from '../tokens.js';
import type { Action } from '../../core/access.js';
import type { UserStore } from '../../core/users.js';
import type { PruneResult } from '../../hooks/prune.js';

/** How a command talks to whoever ran it: the local CLI over the socket, or an SSH channel. */
export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  /** The caller's standard input, read to the end (for `ssh-keys:add name -`). */
  readStdin(): Promise<string>;
  /** Standard input as bytes, up to `limit` (over SSH only: `buildpacks:install - < bp.tgz`). */
  readStdinBytes?(limit: number): Promise<Buffer>;
  /** Raw standard output, for binary data (`postgres:export`); absent where bytes cannot pass. */
  stdout?: NodeJS.WritableStream;
  /** Standard input as a stream of bytes (`postgres:import`), for commands with `streamIn`. */
  stdin?: NodeJS.ReadableStream;
  /** Aborted when the caller goes away (for `logs --follow`). */
  signal: AbortSignal;
  /** Who asked, for records and logs: `cli` for the local admin, else the SSH key or token name. */
  actor: string;
  /**
   * True only on the admin socket (root on the server). Local-only rights hang on this flag,
   * never on `actor`: a key may be named `cli` (docs/security.md).
   */
  local: boolean;
  /**
   * The user whose rights apply: the SSH key's or token's owner; the local CLI is the built-in
   * `admin`. Unset means `admin` only when `local`, and no rights otherwise (README, "Users and access").
   */
  user?: string;
  /** Where the request came from, for the audit log: `local socket`, `ssh 10.0.0.5`. */
  from?: string;
  /** The caller's terminal, for a `terminal` command run at one (`ssh -t`, the CLI at a tty). */
  terminal?: Terminal;
}

/** A caller's terminal: its size now and as it changes. */
export interface Terminal {
  rows: number;
  cols: number;
  onResize(listener: (size: { rows: number; cols: number }) => void): void;
}

export interface ProcessInfo {
  name: string;
  type: string;
  index: number;
  state: string;
  release: number | null;
  hostPort: number | null;
  /** The container's limits as the engine applies them; null when unlimited. */
  memory: string | null;
  cpus: number | null;
}

export interface StatusInfo {
  daemon: 'running';
  docker: string;
  router: 'running' | 'stopped';
  ssh: string;
  http: string;
  stackImage: string;
  apps: number;
  /** Only while some app runs on docker-swarm (README "Schedulers"). */
  swarm?: string;
  registry?: string;
}

/**
 * What the command layer needs from the platform. The daemon implements it; the commands stay
 * free of Docker and git details, and tests can drive them with the real daemon.
 */
/** One swarm node, as `nodes:list` shows it. */
export interface NodeRow {
  id: string;
  hostname: string;
  role: string;
  state: string;
  availability: string;
  address: string;
  leader: boolean;
}

export interface Platform {
  config: Config;
  logger: Logger;
  apps: AppStore;
  keys: SshKeyStore;
  /** Config, formation, restarts, releases and rollback (services/operations.ts). */
  ops: Operations;
  /** The offline package mirror, stack image transfer and build caches. */
  mirror: MirrorAdmin;
  tokens: TokenStore;
  /** Users, groups, app owners and access, the audit log (core/users.ts). */
  users: UserStore;
  buildpacks: BuildpackService;
  /** Postgres and Redis services (services/service-manager.ts). */
  services: ServiceManager;
  status(): Promise<StatusInfo>;
  createApp(name: string): Promise<void>;
  destroyApp(name: string, progress: (line: string) => void): Promise<void>;
  processes(app: string): Promise<ProcessInfo[]>;
  /** How many web upstreams the router has for the app now (0: stopped or not deployed). */
  routed(app: string): number;
  buildStack(progress: (line: string) => void): Promise<string>;
  /** `slipway prune`: what the instance no longer uses, once no build runs (hooks/prune.ts). `all`: the default runtime kept for pushes too. */
  prune(all: boolean, progress: (line: string) => void): Promise<PruneResult>;
  /** The swarm's nodes (`nodes:list`). */
  nodes(): Promise<NodeRow[]>;
  /** `docker swarm join --token <worker token> <manager>:2377`, as argv. */
  joinCommand(): Promise<string[]>;
  life: LifeService;
  /** Single sign-on administration (receiver/commands/sso.ts; implemented by auth/oidc.ts). */
  sso: SsoAdmin;
}

export interface SsoAdmin {
  /** Discovers the provider with these settings; a clear E_SSO_CONFIG error when it cannot. */
  check(s: { issuer: string; clientId: string; clientSecret: string }): Promise<void>;
}

/** App output and build history (receiver/commands/life.ts; implemented by platform/life.ts). */
export interface LifeService {
  /** Writes the app's log lines; with `follow`, keeps writing until `signal` aborts. */
  logs(app: string, o: { lines: number; type?: string; follow: boolean }, io: { out(text: string): void; signal: AbortSignal }): Promise<void>;
  /** A build (the latest when `id` is undefined) and its full log; refuses malformed ids. */
  buildLog(app: string, id: string | undefined): Promise<{ build: BuildRecord; text: string }>;
  /** Writes a build's log as it grows, until the build ends or `signal` aborts. */
  followBuildLog(app: string, id: string | undefined, io: { out(text: string): void; signal: AbortSignal }): Promise<void>;
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
  /**
   * The right the caller needs, checked before `run`: `app:*` on the app named by the first
   * positional argument. Commands that say nothing are for admins only.
   */
  access?: Action;
  /** For changes the audit log records: which app and what, by names only (never values). */
  audit?: (parsed: Parsed) => { app: string | null; detail: string };
  /** Writes bytes to `io.stdout`: the CLI passes them through unchanged. */
  binaryOut?: boolean;
  /** Reads `io.stdin` as a stream: the CLI sends its standard input along. */
  streamIn?: boolean;
  /**
   * Interactive: reads `io.stdin` as a stream and writes `io.stdout`, and gets the caller's
   * terminal when there is one (the CLI in raw mode, an SSH pty). Only these get a pty over SSH.
   */
  terminal?: boolean;
  run(io: CommandIO, parsed: Parsed, platform: Platform): Promise<number | void>;
}
