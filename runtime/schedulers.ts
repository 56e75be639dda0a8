import { SlipwayError } from '../core/errors.js';
import type { AppRecord, SchedulerName } from '../core/store.js';
import type { Deployed, DeployRequest, LogsRequest, OneOffRequest, ProcessEvents, ProcessInfo, ScaleOutcome, ScaleRequest, Scheduler } from './scheduler.js';

/** The scheduler an app record names: `docker-local` unless `scheduler:set` chose another. Pure. */
export function schedulerOf(app: Pick<AppRecord, 'scheduler'> | null): SchedulerName {
  return app?.scheduler ?? 'docker-local';
}

/** Several event streams as one: started and closed together, every listener hears them all. */
class MergedEvents implements ProcessEvents {
  constructor(readonly parts: readonly ProcessEvents[]) {}
  async start(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.start()));
  }
  subscribe(listener: Parameters<ProcessEvents['subscribe']>[0]): () => void {
    const offs = this.parts.map((p) => p.subscribe(listener));
    return () => offs.forEach((off) => off());
  }
  close(): void {
    for (const p of this.parts) p.close();
  }
}

/**
 * Every app's processes go to the scheduler its record names (docs/architecture.md, "The
 * scheduler seam"): callers hold one Scheduler and never ask which. Questions about all apps
 * (`processes()`, events, reconcile) ask each scheduler about its own apps.
 */
export class AppSchedulers implements Scheduler {
  readonly name = 'per-app';
  readonly #all: ReadonlyMap<SchedulerName, Scheduler>;
  readonly #find: (app: string) => Promise<AppRecord | null>;

  constructor(o: { schedulers: readonly Scheduler[]; findApp: (app: string) => Promise<AppRecord | null> }) {
    this.#all = new Map(o.schedulers.map((s) => [s.name as SchedulerName, s]));
    this.#find = o.findApp;
    if (!this.#all.has('docker-local')) throw new Error('docker-local must be one of the schedulers');
  }

  /** The named scheduler; a clear error when this platform does not run it. */
  byName(name: SchedulerName): Scheduler {
    const s = this.#all.get(name);
    if (!s) throw new SlipwayError('E_STATE', `the ${name} scheduler is not available on this platform: see \`slipway status\``);
    return s;
  }

  async for(app: string): Promise<Scheduler> {
    return this.byName(schedulerOf(await this.#find(app)));
  }

  deploy = async (o: DeployRequest): Promise<Deployed> => (await this.for(o.app.name)).deploy(o);
  scale = async (o: ScaleRequest): Promise<ScaleOutcome> => (await this.for(o.app.name)).scale(o);
  stop = async (app: string): Promise<void> => (await this.for(app)).stop(app);
  hasProcesses = async (app: string): Promise<boolean> => (await this.for(app)).hasProcesses(app);
  runReleasePhase = async (o: OneOffRequest): Promise<void> => (await this.for(o.app.name)).runReleasePhase(o);
  logs = async (o: LogsRequest): Promise<void> => (await this.for(o.app)).logs(o);

  async processes(app?: string, o?: { limits?: boolean }): Promise<ProcessInfo[]> {
    if (app !== undefined) return (await this.for(app)).processes(app, o);
    return (await Promise.all([...this.#all.values()].map((s) => s.processes(undefined, o)))).flat();
  }

  async process(id: string): Promise<ProcessInfo | null> {
    for (const s of this.#all.values()) {
      const found = await s.process(id).catch(() => null);
      if (found) return found;
    }
    return null;
  }

  /** Any scheduler's probe will do: each knows how to reach the upstreams it hands out. */
  async answers(upstream: string): Promise<boolean> {
    for (const s of this.#all.values()) if (await s.answers(upstream)) return true;
    return false;
  }

  events(o: { onConnect: () => void }): ProcessEvents {
    return new MergedEvents([...this.#all.values()].map((s) => s.events(o)));
  }

  /** Each scheduler reconciles its own apps; the route table they adopt is handed on as one. */
  async reconcile(apps: readonly AppRecord[], o: { onAdopted: (table: Record<string, string[]>) => Promise<void>; progress: (line: string) => void }): Promise<void> {
    const others = [...this.#all.values()].filter((s) => s.name !== 'docker-local');
    const adopted: Record<string, string[]> = {};
    for (const s of others) {
      const mine = apps.filter((a) => schedulerOf(a) === s.name);
      if (mine.length > 0) await s.reconcile(mine, { progress: o.progress, onAdopted: async (t) => void Object.assign(adopted, t) });
    }
    const local = apps.filter((a) => schedulerOf(a) === 'docker-local' || !this.#all.has(schedulerOf(a)));
    await this.byName('docker-local').reconcile(local, { progress: o.progress, onAdopted: (t) => o.onAdopted({ ...t, ...adopted }) });
  }

  /** Every scheduler's part: an interrupted `scheduler:set` may have left processes on both. */
  async removeApp(app: string): Promise<void> {
    for (const s of this.#all.values()) await s.removeApp(app);
  }

  maxCpus(): Promise<number> {
    return this.byName('docker-local').maxCpus();
  }
}
