import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { SlipwayError } from '../core/errors.js';
import type { PushRef } from '../core/wire.js';

const ZERO = /^0{40}$/;
const SETTLE_MS = 10_000;

/**
 * Keeps the deployed release and the branch in step when pushes to one app overlap. Git moves
 * a ref only if it still holds the value the pusher saw, and only after the pre-receive hook
 * (our deploy) said yes; so a push that waited behind another would deploy and then fail to
 * move the branch. Checking before the deploy refuses it while nothing has changed yet.
 */
export class BranchGuard {
  readonly #refAt: (app: string, ref: string) => Promise<string | null>;
  /** Per app: the ref update git is about to write for the last deploy (after its hook exits). */
  readonly #landing = new Map<string, { ref: string; rev: string }>();

  constructor(refAt: (app: string, ref: string) => Promise<string | null>) {
    this.#refAt = refAt;
  }

  /** Throws if the branch is no longer where this push found it. Call inside the app's queue. */
  async check(app: string, target: PushRef): Promise<void> {
    let now = await this.#refAt(app, target.ref);
    const landing = this.#landing.get(app);
    this.#landing.delete(app);
    if (landing && landing.ref === target.ref) {
      for (const deadline = Date.now() + SETTLE_MS; now !== landing.rev && Date.now() < deadline; ) {
        await sleep(100);
        now = await this.#refAt(app, target.ref);
      }
    }
    const expected = ZERO.test(target.oldRev) ? null : target.oldRev;
    if (now !== expected) {
      const branch = target.ref.replace(/^refs\/heads\//, '');
      throw new SlipwayError(
        'E_DEPLOY',
        `${branch} moved to ${now === null ? 'nothing' : now.slice(0, 7)} while this push waited for another deploy: fetch, merge or rebase, and push again`,
      );
    }
  }

  /** Call after a deploy succeeded: git will now move the ref. */
  landed(app: string, target: PushRef): void {
    this.#landing.set(app, { ref: target.ref, rev: target.newRev });
  }
}

/** Where a branch of a bare repository points now, or null if it does not exist. */
export function refReader(repoDir: (app: string) => string): (app: string, ref: string) => Promise<string | null> {
  return (app, ref) =>
    new Promise((resolve, reject) => {
      execFile('git', ['--git-dir', repoDir(app), 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`], (err, stdout) => {
        if (!err) resolve(stdout.trim());
        else if (typeof err.code === 'number' && err.code === 1) resolve(null);
        else reject(new SlipwayError('E_DEPLOY', `could not read ${ref} of ${app}: ${err.message}`));
      });
    });
}
