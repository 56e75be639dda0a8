/** A running formation container, as far as scaling cares. */
export interface Running {
  id: string;
  type: string;
  index: number;
}

export interface ScalePlan {
  /** Containers to start, by type and number. */
  start: { type: string; index: number }[];
  /** Containers to stop: numbered above the wanted count, or duplicates of a kept number. */
  stop: Running[];
  /** Containers left alone. */
  keep: Running[];
}

/**
 * From the containers that run now and the wanted counts of the named types, what to start and
 * stop so each type ends up numbered 1..n with no gaps. Containers that fit stay untouched
 * (scaling never restarts them); types not named are not looked at.
 */
export function planScale(running: readonly Running[], wanted: ReadonlyMap<string, number>): ScalePlan {
  const plan: ScalePlan = { start: [], stop: [], keep: [] };
  for (const [type, n] of wanted) {
    const mine = running.filter((c) => c.type === type).sort((a, b) => a.index - b.index);
    const kept = new Set<number>();
    for (const c of mine) {
      if (c.index >= 1 && c.index <= n && !kept.has(c.index)) {
        kept.add(c.index);
        plan.keep.push(c);
      } else {
        plan.stop.push(c);
      }
    }
    for (let index = 1; index <= n; index++) {
      if (!kept.has(index)) plan.start.push({ type, index });
    }
  }
  return plan;
}
