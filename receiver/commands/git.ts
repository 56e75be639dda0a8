import { parseAppName } from '../../core/app-name.js';
import { usageError } from '../../core/errors.js';
import { checkBranchName, deployBranchOf } from '../../hooks/deploy-branch.js';
import type { Command } from './types.js';

/** Git settings of an app, Dokku's `git:set <app> <key> <value>` shape. */
export const gitCommands: Command[] = [
  {
    name: 'git:set',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app> deploy-branch <branch>',
    summary: 'Set the branch whose pushes deploy the app (default main); pushes to others are kept, not deployed',
    args: [3, 3],
    async run(io, { positionals }, platform) {
      const [name, key, value] = positionals as [string, string, string];
      const app = parseAppName(name);
      if (key !== 'deploy-branch') throw usageError(`git:set: the only setting is deploy-branch, not "${key.slice(0, 40)}"`);
      const branch = checkBranchName(value);
      const before = deployBranchOf(await platform.apps.get(app));
      await platform.apps.update(app, (a) => {
        a.deployBranch = branch;
      });
      io.out(
        before === branch
          ? `-----> ${app} deploys from ${branch} already\n`
          : `-----> ${app} now deploys from ${branch} (was ${before}); the next push to ${branch} deploys, the running release stays\n`,
      );
    },
  },
];
