/**
 * The phases of a push, in order (README "How fast a deploy is"): what the push log times so a
 * slow deploy says where its time went. `release phase` only runs when the Procfile has one.
 */
export const PUSH_PHASES = ['receive', 'detect', 'compile', 'release image', 'release phase', 'start', 'healthy', 'routed', 'router turnover', 'old drained'] as const;
export type PushPhase = (typeof PUSH_PHASES)[number];

/** The push log line of one finished phase; `bench/deploy` reads these back (parsePhaseLines). */
export function phaseLine(phase: PushPhase, ms: number): string {
  return `       phase ${phase}: ${(ms / 1000).toFixed(2)} s\n`;
}

const PHASE_LINE = /^(?:remote:)?\s*phase ([a-z ]+): ([0-9]+\.[0-9]+) s\s*$/;

/** The phase times (ms) found in push output, each phase's last occurrence. Pure. */
export function parsePhaseLines(output: string): Map<PushPhase, number> {
  const found = new Map<PushPhase, number>();
  for (const line of output.split('\n')) {
    const m = PHASE_LINE.exec(line);
    const phase = PUSH_PHASES.find((p) => p === m?.[1]);
    if (m && phase) found.set(phase, Math.round(Number(m[2]) * 1000));
  }
  return found;
}

/**
 * Times consecutive phases: each `end` closes the phase that ran since the previous one (or
 * since the clock started) and reports it. The clock is injected so tests need no waiting.
 */
export class PhaseClock {
  #last: number;
  readonly #now: () => number;
  readonly #report: (phase: PushPhase, ms: number) => void;

  constructor(report: (phase: PushPhase, ms: number) => void, now: () => number = () => performance.now()) {
    this.#now = now;
    this.#last = now();
    this.#report = report;
  }

  end(phase: PushPhase): void {
    const t = this.#now();
    this.#report(phase, t - this.#last);
    this.#last = t;
  }
}
