import { LABELS, WEB_PORT, containerName, upstreamOf, type ContainerSummary } from './containers.js';

/** What reconciling needs to know of one live container (from its labels and name). */
export interface LiveContainer {
  id: string;
  name: string;
  type: string;
  index: number;
  release: number | null;
  state: string;
  hostPort: number | null;
}

export type ReconcileAction =
  | { kind: 'remove'; id: string; name: string; why: string }
  | { kind: 'rename'; id: string; from: string; to: string }
  | { kind: 'start'; type: string; index: number; name: string };

export function liveContainer(c: ContainerSummary): LiveContainer {
  const release = Number(c.Labels[LABELS.release]);
  return {
    id: c.Id,
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    type: c.Labels[LABELS.type] ?? '',
    index: Number(c.Labels[LABELS.index] ?? 0),
    release: Number.isInteger(release) && release > 0 ? release : null,
    state: c.State,
    hostPort: c.Ports.find((p) => p.PrivatePort === WEB_PORT && p.PublicPort)?.PublicPort ?? null,
  };
}

/**
 * Brings an app's containers back to its stored state after the daemon stopped at any point:
 * no release newer than the current one runs (it never went live), `counts[type]` containers per
 * type under their canonical names.
 * A container of the current release moved aside (`.old-`) by an interrupted deploy takes its
 * name back instead of being replaced, so a release that served keeps serving unrestarted.
 * Removals come first: they free the names that renames and starts need.
 */
export function planReconcile(o: { app: string; current: number | null; counts: Map<string, number>; containers: LiveContainer[] }): ReconcileAction[] {
  const removals: ReconcileAction[] = [];
  const renames: ReconcileAction[] = [];
  const starts: ReconcileAction[] = [];
  const mine: LiveContainer[] = [];
  for (const c of o.containers) {
    // Releases up to the current one may serve: `config:set --no-restart` records a release
    // while the containers of the one before keep running until the next restart.
    if (o.current === null || c.release === null || c.release > o.current) {
      removals.push({ kind: 'remove', id: c.id, name: c.name, why: `v${c.release ?? '?'} never became current` });
    } else {
      mine.push(c);
    }
  }
  const kept = new Set<string>();
  for (const [type, n] of o.counts) {
    for (let index = 1; index <= n; index++) {
      const name = containerName(o.app, type, index);
      const same = mine.filter((c) => c.type === type && c.index === index);
      const canonical = same.find((c) => c.name === name);
      const aside = same.find((c) => c.name !== name && c.state === 'running') ?? same.find((c) => c.name !== name);
      if (canonical) kept.add(canonical.id);
      else if (aside) {
        kept.add(aside.id);
        renames.push({ kind: 'rename', id: aside.id, from: aside.name, to: name });
      } else starts.push({ kind: 'start', type, index, name });
    }
  }
  for (const c of mine) {
    if (kept.has(c.id)) continue;
    const why = c.name.includes('.old-') ? 'left aside by an interrupted deploy' : `not in the formation (${c.type}=${o.counts.get(c.type) ?? 0})`;
    removals.push({ kind: 'remove', id: c.id, name: c.name, why });
  }
  return [...removals, ...renames, ...starts];
}

/**
 * The upstreams the router should use for an app: running web containers of the current release
 * (or an earlier one still serving after `--no-restart`) under their canonical names (a `.old-`
 * one is being retired by a deploy).
 */
export function currentUpstreams(app: string, current: number | null, containers: LiveContainer[]): string[] {
  if (current === null) return [];
  return containers
    .filter((c) => c.type === 'web' && c.release !== null && c.release <= current && c.state === 'running' && c.hostPort !== null)
    .filter((c) => c.name === containerName(app, c.type, c.index))
    .sort((a, b) => a.index - b.index)
    .map((c) => upstreamOf(c.hostPort!));
}
