import PQueue from 'p-queue';
import { parseAppName } from '../core/app-name.js';
import { oneLine, SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { AppStore } from '../core/store.js';
import type { PushRef } from '../core/wire.js';
import type { BranchGuard } from './branch-guard.js';
import { deployBranchOf } from './deploy-branch.js';
import { header } from '../buildpacks/output.js';
import type { DeployOutput, DeployRequest } from './deploy.js';

const ZERO = /^0{40}$/;
const SHA = /^[0-9a-f]{40}$/;

export interface PushRequest {
  app: string;
  refs: PushRef[];
  gitEnv: Record<string, string>;
  pusher: string;
}

/** One queue per app: pushes (and other changes) to one app run one at a time, in arrival order. */
export class AppQueues {
  readonly #queues = new Map<string, PQueue>();

  run<T>(app: string, task: () => Promise<T>): Promise<T> {
    let q = this.#queues.get(app);
    if (!q) {
      q = new PQueue({ concurrency: 1 });
      this.#queues.set(app, q);
    }
    const queue = q;
    return queue.add(task).finally(() => {
      if (queue.size === 0 && queue.pending === 0) this.#queues.delete(app);
    });
  }
}

/** The ref update of a push that deploys: the app's deploy branch moving to a commit. Pure. */
export function deployTarget(refs: PushRef[], branch: string): PushRef | null {
  return refs.find((r) => r.ref === `refs/heads/${branch}` && !ZERO.test(r.newRev)) ?? null;
}

export interface PushDeps {
  apps: AppStore;
  queues: AppQueues;
  logger: Logger;
  deploy: (req: DeployRequest, io: DeployOutput) => Promise<unknown>;
  /** Refuses a push whose branch moved while it waited (see BranchGuard). */
  branches?: BranchGuard;
}

/**
 * The daemon's side of the pre-receive hook. Returns the hook's exit code: 0 lets git move the
 * refs, anything else refuses the whole push.
 */
export async function handlePush(
  deps: PushDeps,
  req: PushRequest,
  io: DeployOutput,
): Promise<number> {
  // Once deployRevision runs it explains its own failure in the build log; before that, we do.
  let explained = false;
  try {
    const app = parseAppName(req.app);
    const branch = deployBranchOf(await deps.apps.get(app));
    for (const r of req.refs) {
      if (!SHA.test(r.oldRev) || !SHA.test(r.newRev) || !r.ref.startsWith('refs/')) {
        throw new SlipwayError('E_DEPLOY', 'malformed ref update from git');
      }
    }
    const target = deployTarget(req.refs, branch);
    const others = req.refs.filter((r) => r !== target && !ZERO.test(r.newRev));
    if (others.length > 0) {
      const names = others.map((r) => r.ref.replace(/^refs\/heads\//, '')).join(', ');
      io.out(header(`Received ${names}: kept, not deployed: this app deploys from ${branch}`));
    }
    if (!target) return 0;
    const waiting = setTimeout(() => io.out(header('Waiting for an earlier deploy of this app to finish')), 500);
    await deps.queues.run(app, async () => {
      clearTimeout(waiting);
      await deps.branches?.check(app, target);
      explained = true;
      await deps.deploy({ app, rev: target.newRev, gitEnv: req.gitEnv, pusher: req.pusher }, io);
      deps.branches?.landed(app, target);
    });
    return 0;
  } catch (err) {
    if (!(err instanceof SlipwayError)) deps.logger.error({ err, app: req.app }, 'deploy failed unexpectedly');
    if (!explained) io.out(` !     ${oneLine(err)}\n`);
    return 1;
  }
}
