import fs from 'node:fs/promises';
import path from 'node:path';
import { SlipwayError } from './errors.js';
import { readJson, writeJsonAtomic } from './files.js';

/**
 * One entry of app.json `healthchecks.web`, in Dokku's format. Times are seconds. Only
 * `startup` checks gate a deploy; `liveness`/`readiness` are accepted (Dokku files carry them)
 * and skipped.
 */
export interface HealthCheck {
  type?: 'startup' | 'liveness' | 'readiness';
  name?: string;
  description?: string;
  path: string;
  /** The response body must contain this text. */
  content?: string;
  attempts?: number;
  timeout?: number;
  /** Delay before the first attempt. */
  wait?: number;
  /** Dokku's name for the delay before the first attempt; `wait` wins when both are set. */
  initialDelay?: number;
}

/** One deployed version of an app: an image plus the config it ran with. */
export interface Release {
  version: number;
  image: string;
  buildId: string | null;
  commit: string | null;
  configHash: string;
  processTypes: Record<string, string>;
  /** Config vars a buildpack's bin/release proposed; user config overrides them. */
  defaultConfig: Record<string, string>;
  createdAt: string;
  by: string;
  description: string;
  /** The user config this release runs with, so a rollback restores it. Secrets: never log. */
  config?: Record<string, string>;
  /** app.json `healthchecks.web` of the deployed tree; restarts and rollbacks apply them too. */
  healthchecks?: HealthCheck[];
  /** Its image tag was removed to save space (config.keepReleases); it can no longer be rolled back to. */
  imagePruned?: boolean;
}

export interface BuildRecord {
  id: string;
  commit: string;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  buildpacks: string[];
  error: string | null;
  by: string;
  /**
   * Set while the processes this build's deploy replaced drain and stop after the push returned
   * (their outcome goes to the build's log); cleared when they are gone, or by the next start.
   */
  retiring?: boolean;
}

export interface AppRecord {
  name: string;
  createdAt: string;
  config: Record<string, string>;
  /** Containers wanted per process type; persisted so restarts and redeploys keep the scale. */
  formation: Record<string, number>;
  buildpacks: string[];
  releases: Release[];
  /** The release that serves now; null before the first deploy. */
  current: number | null;
  builds: BuildRecord[];
  /** Per-container resource limits (`ps:set`); applied whenever a container starts. */
  limits?: Limits;
  /** The only branch whose pushes deploy (`git:set <app> deploy-branch`); `main` when unset. */
  deployBranch?: string;
  /** What runs the app's processes (`scheduler:set`); `docker-local` when unset (README "Schedulers"). */
  scheduler?: SchedulerName;
  /** How the Portal shows the app (`apps:set`); unset until an owner sets it. */
  portal?: PortalInfo;
}

/** The Portal's card for an app: owner-written text, shown escaped (docs/web.md). */
export interface PortalInfo {
  title: string;
  description: string;
  tags: string[];
}

export const SCHEDULER_NAMES = ['docker-local', 'docker-swarm'] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

export interface Limits {
  /** Docker's memory syntax: `512m`, `2g`. */
  memory?: string;
  cpus?: number;
}

const KEEP_BUILD_RECORDS = 100;

/**
 * App records, one JSON file per app, written atomically. Every change goes through `update`,
 * which serializes read-modify-write per app inside this (the only writing) process.
 */
export class AppStore {
  readonly #dir: string;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  #file(name: string): string {
    return path.join(this.#dir, `${name}.json`);
  }

  async init(): Promise<void> {
    await fs.mkdir(this.#dir, { recursive: true, mode: 0o700 });
  }

  async find(name: string): Promise<AppRecord | null> {
    return readJson<AppRecord | null>(this.#file(name), null);
  }

  async get(name: string): Promise<AppRecord> {
    const app = await this.find(name);
    if (!app) throw appNotFound(name);
    return app;
  }

  async list(): Promise<AppRecord[]> {
    const names = (await fs.readdir(this.#dir).catch(() => [] as string[]))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5))
      .sort();
    const apps = await Promise.all(names.map((n) => this.find(n)));
    return apps.filter((a): a is AppRecord => a !== null);
  }

  async create(name: string, now = new Date()): Promise<AppRecord> {
    return this.#locked(name, async () => {
      if (await this.find(name)) throw new SlipwayError('E_APP_EXISTS', `app "${name}" already exists`);
      const app: AppRecord = {
        name,
        createdAt: now.toISOString(),
        config: {},
        formation: {},
        buildpacks: [],
        releases: [],
        current: null,
        builds: [],
      };
      await writeJsonAtomic(this.#file(name), app);
      return app;
    });
  }

  async update(name: string, change: (app: AppRecord) => AppRecord | void): Promise<AppRecord> {
    return this.#locked(name, async () => {
      const app = await this.get(name);
      const next = change(app) ?? app;
      next.builds = next.builds.slice(-KEEP_BUILD_RECORDS);
      await writeJsonAtomic(this.#file(name), next);
      return next;
    });
  }

  async remove(name: string): Promise<void> {
    await this.#locked(name, () => fs.rm(this.#file(name), { force: true }));
  }

  async #locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.#locks.set(name, settled);
    try {
      return await run;
    } finally {
      if (this.#locks.get(name) === settled) this.#locks.delete(name);
    }
  }
}

export function currentRelease(app: AppRecord): Release | null {
  return app.releases.find((r) => r.version === app.current) ?? null;
}

export function nextReleaseVersion(app: AppRecord): number {
  return app.releases.reduce((max, r) => Math.max(max, r.version), 0) + 1;
}

/**
 * The one refusal for an app that does not exist, and for one the caller may not view: the same
 * words and exit code, so existence does not leak (README, "Users and access").
 */
export function appNotFound(name: string): SlipwayError {
  return new SlipwayError('E_APP_NOT_FOUND', `app "${name}" does not exist: create it with \`slipway apps:create ${name}\``);
}
