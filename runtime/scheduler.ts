import type { AppRecord, HealthCheck } from '../core/store.js';
import type { SpecApp, SpecRelease } from './process-spec.js';

/**
 * The seam between the platform and whatever runs app processes (docs/architecture.md,
 * "Schedulers"). Everything that starts, stops, lists, routes or reads the output of an app's
 * processes goes through a Scheduler; nothing else talks to an engine about them. Images are
 * not the scheduler's: builders make them and `runtime/release-images.ts` tags and prunes them.
 * `docker-local` (runtime/docker-local/) runs `<app>.<type>.<n>` containers on this machine's
 * engine; a Swarm or Kubernetes scheduler implements the same methods over services or
 * deployments.
 */
export interface Scheduler {
  /** `docker-local`, `docker-swarm`, ... (contract "Schedulers"). */
  readonly name: string;

  /**
   * Replaces the app's processes with `release`'s at the app's formation (all types, or `only`
   * one): web first and without downtime, the new web processes routed through `onRoutes` once
   * healthy. Fails leaving the previous web processes serving. With `background`, returns once
   * the new processes run and are routed and `retired` settles when the replaced ones have
   * drained and stopped; without, it returns after that. A later `deploy` or `scale` of the same
   * app waits for a retirement still running.
   */
  deploy(o: DeployRequest): Promise<Deployed>;

  /**
   * Starts and stops only the difference between what runs and `wanted` (numbered 1..n per
   * type); untouched processes keep running. New web processes take traffic once healthy.
   */
  scale(o: ScaleRequest): Promise<ScaleOutcome>;

  /** Stops and removes every process of the app; the formation (the record) stays. */
  stop(app: string): Promise<void>;

  /** The app's processes (every app's when `app` is undefined), sorted by type then index. */
  processes(app?: string, o?: { limits?: boolean }): Promise<ProcessInfo[]>;

  /** One process by id, or null when it is gone. */
  process(id: string): Promise<ProcessInfo | null>;

  /** Whether the app runs any process of its formation (one left aside by a deploy does not count). */
  hasProcesses(app: string): Promise<boolean>;

  /** Whether an upstream accepts connections now (the route keeper waits on this). */
  answers(upstream: string): Promise<boolean>;

  /** Runs a release's `release` command once (the release phase); throws E_RELEASE on failure. */
  runReleasePhase(o: OneOffRequest): Promise<void>;

  /** Writes the app's output (see runtime/app-logs.ts); with `follow`, until `signal` aborts. */
  logs(o: LogsRequest): Promise<void>;

  /** The process start/die stream the route keeper and followed logs share. */
  events(o: { onConnect: () => void }): ProcessEvents;

  /**
   * After a daemon restart: bring every app's processes back to its record without restarting
   * what serves, hand the routes of what runs to `onAdopted`, then start what is missing.
   */
  reconcile(apps: readonly AppRecord[], o: { onAdopted: (table: Record<string, string[]>) => Promise<void>; progress: (line: string) => void }): Promise<void>;

  /** Removes every process of the app and what the scheduler made for it (its network). */
  removeApp(app: string): Promise<void>;

  /** CPUs a process may be given at most (`ps:set cpus=` is refused above it). */
  maxCpus(): Promise<number>;
}

/** One process of an app, as `ps` shows it. */
export interface ProcessInfo {
  id: string;
  /** `<app>.<type>.<n>` (or a name it was moved aside to during a deploy). */
  name: string;
  app: string;
  type: string;
  index: number;
  /** The engine's word: running, exited, restarting, created... */
  state: string;
  release: number | null;
  /** Where the router reaches it (`host:port`); null for non-web or not listening. */
  upstream: string | null;
  /** Being retired by a deploy: not part of the formation. */
  retiring: boolean;
  /**
   * Started by a deploy or scale still running, which routes it itself once it is healthy; the
   * route keeper leaves it alone (it would route it before its health checks).
   */
  starting?: boolean;
  /** With `{ limits: true }`: what the engine enforces; null when unlimited. */
  memory?: string | null;
  cpus?: number | null;
}

export type Progress = (line: string) => void;

export interface DeployRequest {
  app: SpecApp;
  release: SpecRelease & { healthchecks?: readonly HealthCheck[] | undefined };
  formation: Record<string, number>;
  /** Replace only this process type (`ps:restart <app> <type>`). */
  only?: string;
  onRoutes: (upstreams: string[]) => Promise<void>;
  /** Detail lines, without indentation or newline. */
  progress: Progress;
  /** Called as each step of the web switch ends, so the push log can time it. */
  phase?: (phase: DeployPhase) => void;
  /** Return once the new processes are routed; the old ones drain and stop after (see `deploy`). */
  background?: boolean;
}

export interface Deployed {
  upstreams: string[];
  /** Settles (never rejects) when the processes the deploy replaced have drained and stopped. */
  retired: Promise<Retired>;
}

/** What became of the processes a deploy replaced. */
export interface Retired {
  /** Names (with their release) of the processes stopped and removed. */
  stopped: string[];
  /** `<name>: <why>` of those that could not be stopped (the next daemon start removes them). */
  failed: string[];
  /** From the switch until the last one stopped. */
  ms: number;
}

export const NOTHING_RETIRED: Retired = { stopped: [], failed: [], ms: 0 };

/** The steps of a deploy's web switch, in order; `old drained` may come after the deploy returned. */
export type DeployPhase = 'start' | 'healthy' | 'routed' | 'old drained';

export interface ScaleRequest {
  app: SpecApp;
  release: SpecRelease & { healthchecks?: readonly HealthCheck[] | undefined };
  wanted: ReadonlyMap<string, number>;
  onRoutes: (upstreams: string[]) => Promise<void>;
  /** Detail lines, without indentation or newline. */
  progress: Progress;
}

export interface ScaleOutcome {
  started: number;
  stopped: number;
  untouched: number;
}

export interface OneOffRequest {
  app: SpecApp;
  release: SpecRelease;
  timeoutSeconds: number;
  onOutput: (line: string) => void;
  signal?: AbortSignal;
}

export interface LogsRequest {
  app: string;
  lines: number;
  type?: string;
  follow: boolean;
  signal: AbortSignal;
  events: ProcessEvents;
  write(text: string): void;
  onStream?: (delta: 1 | -1) => void;
}

/** A process starting or dying. */
export interface ProcessEvent {
  action: 'start' | 'die';
  id: string;
  name: string;
  app: string;
  type: string;
  release: number | null;
}

export interface ProcessEvents {
  /** Resolves once the stream is open, so nothing after it is missed. */
  start(): Promise<void>;
  subscribe(listener: (event: ProcessEvent) => void): () => void;
  close(): void;
}
