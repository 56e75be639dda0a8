import { SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { AppRecord, AppStore } from '../core/store.js';

/**
 * Each app deploys from one branch (README, "Deploy branch"): pushes to any other branch are
 * kept but not deployed. Before this, both `main` and `master` deployed, so two branches could
 * fight over what is live.
 */
export const DEFAULT_DEPLOY_BRANCH = 'main';

/** The branch whose pushes deploy `app`. */
export function deployBranchOf(app: Pick<AppRecord, 'deployBranch'>): string {
  return app.deployBranch ?? DEFAULT_DEPLOY_BRANCH;
}

/**
 * A branch name git accepts (`git check-ref-format --branch`), kept to a plain subset: no leading
 * `-` (it would read as an option), no `..`, `@{`, `//`, control characters, or `.lock` ends. Pure.
 */
export function checkBranchName(name: string): string {
  const ok =
    /^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$/.test(name) &&
    !name.includes('..') &&
    !name.includes('//') &&
    !name.includes('/.') &&
    !/[./]$/.test(name) &&
    !/\.lock(\/|$)/.test(name) &&
    name !== 'HEAD';
  if (!ok) {
    throw new SlipwayError('E_USAGE', `invalid branch name ${JSON.stringify(name.slice(0, 100))}: use letters, digits, '.', '_', '-' and '/', starting with a letter or digit`, { exitCode: 2 });
  }
  return name;
}

/**
 * Apps made before the deploy branch existed deployed from `main` and `master` alike. At daemon
 * start each gets the branch that holds what is live now: `main` if it points at the current
 * release's commit, else `master` if that does; an app with neither (never deployed, or rolled
 * back) keeps `main` unless only `master` exists. So upgrading never moves what a push deploys
 * for an app that used `master`.
 */
export async function migrateDeployBranches(apps: AppStore, refAt: (app: string, ref: string) => Promise<string | null>, logger: Logger): Promise<void> {
  for (const record of await apps.list()) {
    if (record.deployBranch !== undefined) continue;
    const live = record.releases.find((r) => r.version === record.current)?.commit ?? null;
    const main = await refAt(record.name, 'refs/heads/main').catch(() => null);
    const master = await refAt(record.name, 'refs/heads/master').catch(() => null);
    const branch = live !== null && main === live ? 'main' : live !== null && master === live ? 'master' : main === null && master !== null ? 'master' : DEFAULT_DEPLOY_BRANCH;
    await apps.update(record.name, (a) => {
      a.deployBranch ??= branch;
    });
    logger.info({ app: record.name, deployBranch: branch }, 'deploy branch set for an app made before deploy branches');
  }
}
