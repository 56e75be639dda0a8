import { SlipwayError } from './errors.js';
import { readJson, writeJsonAtomic } from './files.js';

/**
 * Settings an operator changes while the platform runs (`slipway mirror:upstream ...`), kept in
 * `$SLIPWAY_HOME/state/settings.json`. They override config.json at run time: readers ask for
 * the current value each time instead of keeping the one from startup.
 */
export interface Settings {
  /** A registry URL, or null for off. Absent: fall back to the configured default. */
  npmUpstream?: string | null;
  pypiUpstream?: string | null;
}

export class SettingsStore {
  readonly #file: string;
  #turn: Promise<unknown> = Promise.resolve();

  constructor(file: string) {
    this.#file = file;
  }

  async read(): Promise<Settings> {
    const s = await readJson<Settings>(this.#file, {});
    if (typeof s !== 'object' || s === null || Array.isArray(s)) {
      throw new SlipwayError('E_STATE', `${this.#file} is not a settings object: fix or remove it`);
    }
    return s;
  }

  /** Read-modify-write, one at a time, so two changes never lose each other. */
  update(change: (s: Settings) => void): Promise<Settings> {
    const run = this.#turn.catch(() => undefined).then(async () => {
      const s = await this.read();
      change(s);
      await writeJsonAtomic(this.#file, s, 0o600);
      return s;
    });
    this.#turn = run;
    return run;
  }
}
