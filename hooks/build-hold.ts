/**
 * Builds and runtime preparations on one side, `slipway prune` on the other (README "Cleaning
 * up"): any number of builds run together, prune runs alone. Prune removes what no image is built
 * on yet, which a running build may be about to build on (a runtime image just committed, an
 * unpacked runtime it mounts, its build and commit containers), so it waits for running builds
 * and holds new ones until it is done. A waiting prune goes first, so a busy platform cannot
 * starve it; it takes seconds. Builds never take the hold inside one another.
 */
export class BuildHold {
  #builds = 0;
  /** The prune running or waiting, which new builds wait for. */
  #prune: Promise<void> | null = null;
  #idle: (() => void) | null = null;

  /** Runs a build (or a runtime preparation) once no prune runs or waits; `waiting` is told once if it has to wait. */
  async build<T>(task: () => Promise<T>, waiting: () => void = () => undefined): Promise<T> {
    if (this.#prune) waiting();
    while (this.#prune) await this.#prune;
    this.#builds += 1;
    try {
      return await task();
    } finally {
      this.#builds -= 1;
      if (this.#builds === 0) this.#idle?.();
    }
  }

  /**
   * Runs `task` alone if it can start now (no build runs, no prune runs or waits), else does
   * nothing and resolves to null: for clean-ups that may be left to `slipway prune` rather than wait.
   */
  async ifIdle<T>(task: () => Promise<T>): Promise<T | null> {
    if (this.#builds > 0 || this.#prune) return null;
    return this.alone(task);
  }

  /** Runs `task` alone: after the running builds end, before the next ones start. `waiting` is told how many it waits for. */
  async alone<T>(task: () => Promise<T>, waiting: (builds: number) => void = () => undefined): Promise<T> {
    while (this.#prune) await this.#prune;
    let done!: () => void;
    this.#prune = new Promise<void>((resolve) => (done = resolve));
    try {
      if (this.#builds > 0) {
        waiting(this.#builds);
        await new Promise<void>((resolve) => (this.#idle = resolve));
        this.#idle = null;
      }
      return await task();
    } finally {
      this.#prune = null;
      done();
    }
  }
}
