import { describe, expect, it } from 'vitest';
import type { AppRecord } from '../../core/store.js';
import { AppSchedulers, schedulerOf } from '../../runtime/schedulers.js';
import { NOTHING_RETIRED, type ProcessInfo, type Scheduler } from '../../runtime/scheduler.js';

// The per-app dispatch only: each scheduler here records what it was asked (the real ones are
// tested against the engine in docker-local and swarm-scheduler tests).
function recording(name: string, calls: string[], procs: ProcessInfo[] = []): Scheduler {
  const note = (what: string) => async (x?: unknown) => {
    calls.push(`${name}:${what}:${typeof x === 'string' ? x : ((x as { app?: { name: string } })?.app?.name ?? '')}`);
  };
  return {
    name,
    deploy: async (o) => (await note('deploy')(o), { upstreams: [], retired: Promise.resolve(NOTHING_RETIRED) }),
    scale: async (o) => (await note('scale')(o), { started: 0, stopped: 0, untouched: 0 }),
    stop: note('stop'),
    processes: async () => procs,
    process: async (id) => procs.find((p) => p.id === id) ?? null,
    hasProcesses: async () => procs.length > 0,
    answers: async () => false,
    runReleasePhase: note('release'),
    logs: note('logs'),
    events: () => ({ start: async () => {}, subscribe: () => () => true, close: () => {} }),
    reconcile: async (apps, o) => {
      calls.push(`${name}:reconcile:${apps.map((a) => a.name).join(',')}`);
      await o.onAdopted(Object.fromEntries(apps.map((a) => [a.name, [`${name}-upstream`]])));
    },
    removeApp: note('removeApp'),
    maxCpus: async () => 4,
  };
}

const record = (name: string, scheduler?: AppRecord['scheduler']) => ({ name, config: {}, formation: {}, buildpacks: [], releases: [], current: null, builds: [], createdAt: '', ...(scheduler ? { scheduler } : {}) }) as AppRecord;

describe('AppSchedulers (unit)', () => {
  const apps = new Map([['a', record('a')], ['b', record('b', 'docker-swarm')]]);
  const proc = (id: string, app: string): ProcessInfo => ({ id, name: `${app}.web.1`, app, type: 'web', index: 1, state: 'running', release: 1, upstream: null, retiring: false });
  const make = (calls: string[]) =>
    new AppSchedulers({ schedulers: [recording('docker-local', calls, [proc('l1', 'a')]), recording('docker-swarm', calls, [proc('s1', 'b')])], findApp: async (n) => apps.get(n) ?? null });

  it('sends each app to the scheduler its record names, docker-local when unset', async () => {
    const calls: string[] = [];
    const s = make(calls);
    const release = { version: 1, image: 'i', processTypes: {}, defaultConfig: {}, config: {} };
    await s.deploy({ app: apps.get('a')!, release, formation: {}, onRoutes: async () => {}, progress: () => {} });
    await s.deploy({ app: apps.get('b')!, release, formation: {}, onRoutes: async () => {}, progress: () => {} });
    await s.stop('b');
    expect(calls).toEqual(['docker-local:deploy:a', 'docker-swarm:deploy:b', 'docker-swarm:stop:b']);
    expect(schedulerOf(null)).toBe('docker-local');
  });

  it('answers all-app questions from every scheduler, and finds a process wherever it runs', async () => {
    const s = make([]);
    expect((await s.processes()).map((p) => p.id)).toEqual(['l1', 's1']);
    expect((await s.process('s1'))?.app).toBe('b');
    expect(await s.process('nope')).toBeNull();
  });

  it('reconciles each app on its own scheduler and adopts one route table', async () => {
    const calls: string[] = [];
    let table: Record<string, string[]> = {};
    await make(calls).reconcile([...apps.values()], { progress: () => {}, onAdopted: async (t) => void (table = t) });
    expect(calls).toEqual(['docker-swarm:reconcile:b', 'docker-local:reconcile:a']);
    expect(table).toEqual({ a: ['docker-local-upstream'], b: ['docker-swarm-upstream'] });
  });

  it('removes an app from every scheduler (a move may have been interrupted)', async () => {
    const calls: string[] = [];
    await make(calls).removeApp('a');
    expect(calls).toEqual(['docker-local:removeApp:a', 'docker-swarm:removeApp:a']);
  });

  it('refuses a scheduler this platform does not run, in one line', () => {
    const s = new AppSchedulers({ schedulers: [recording('docker-local', [])], findApp: async () => null });
    expect(() => s.byName('docker-swarm')).toThrow(/the docker-swarm scheduler is not available on this platform/);
  });
});
