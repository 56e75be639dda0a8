import { parseAppName, parseNewAppName } from '../../core/app-name.js';
import { SlipwayError } from '../../core/errors.js';
import { currentRelease } from '../../core/store.js';
import { deployBranchOf } from '../../hooks/deploy-branch.js';
import { canView } from '../../core/access.js';
import { callerOf, originOf } from './caller.js';
import { json, table } from './output.js';
import type { Command } from './types.js';

const jsonFlag = { json: { type: 'boolean' } } as const;

export const appCommands: Command[] = [
  {
    name: 'apps:create',
    access: 'app:create',
    usage: '<app>',
    summary: 'Create an app and its git repository',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const name = parseNewAppName(positionals[0]!);
      const creator = callerOf(io, platform);
      await platform.createApp(name);
      // The creator owns it; new apps are restricted (README, "Users and access").
      platform.users.appCreated(originOf(io), name, creator.name);
      const { listen, sshPort, httpPort, domain } = platform.config;
      io.out(`-----> Created ${name}\n`);
      io.out(`       git remote add slipway ssh://git@${listen}:${sshPort}/${name}\n`);
      io.out(`       then: git push slipway main   ->   http://${name}.${domain}:${httpPort}/\n`);
    },
  },
  {
    name: 'apps:list',
    access: 'any',
    usage: '[--json]',
    summary: 'List apps',
    flags: jsonFlag,
    args: [0, 0],
    async run(io, { flags }, platform) {
      // Only the apps the caller may view: the others do not exist for it.
      const caller = callerOf(io, platform);
      const apps = (await platform.apps.list()).filter((a) => caller.role === 'admin' || canView(caller, platform.users.access(a.name)));
      if (flags.json) {
        io.out(json(apps.map((a) => ({ name: a.name, release: a.current, createdAt: a.createdAt }))));
        return;
      }
      if (apps.length === 0) {
        io.out('no apps yet: create one with `slipway apps:create <app>`\n');
        return;
      }
      io.out(apps.map((a) => `${a.name}\n`).join(''));
    },
  },
  {
    name: 'apps:info',
    access: 'app:view',
    usage: '<app> [--json]',
    summary: 'Show an app: release, URLs, formation, buildpacks',
    flags: jsonFlag,
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = await platform.apps.get(parseAppName(positionals[0]!));
      const { listen, sshPort, httpPort, domain } = platform.config;
      const release = currentRelease(app);
      const info = {
        name: app.name,
        createdAt: app.createdAt,
        release: release ? `v${release.version}` : null,
        commit: release?.commit ?? null,
        url: `http://${app.name}.${domain}:${httpPort}/`,
        pathUrl: `http://${listen}:${httpPort}/${app.name}/`,
        gitSsh: `ssh://git@${listen}:${sshPort}/${app.name}`,
        gitHttp: `http://${listen}:${httpPort}/_git/${app.name}.git`,
        formation: app.formation,
        processTypes: release?.processTypes ?? {},
        buildpacks: app.buildpacks,
        deployBranch: deployBranchOf(app),
      };
      if (flags.json) {
        io.out(json(info));
        return;
      }
      io.out(
        table([
          ['name', info.name],
          ['release', info.release ?? '(not deployed)'],
          ['commit', info.commit ?? '-'],
          ['url', info.url],
          ['path url', info.pathUrl],
          ['git (ssh)', info.gitSsh],
          ['git (http)', info.gitHttp],
          ['deploy branch', info.deployBranch],
          ['formation', Object.entries(info.formation).map(([t, n]) => `${t}=${n}`).join(' ') || '-'],
          ['buildpacks', info.buildpacks.join(' ') || '(detected)'],
          ['created', info.createdAt],
        ]),
      );
    },
  },
  {
    name: 'apps:destroy',
    access: 'app:manage',
    usage: '<app> --force',
    summary: 'Destroy an app: containers, images, repository, cache and routes',
    flags: { force: { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const name = parseAppName(positionals[0]!);
      await platform.apps.get(name);
      if (!flags.force) {
        throw new SlipwayError('E_USAGE', `this deletes ${name} and everything it has: run \`slipway apps:destroy ${name} --force\``, {
          exitCode: 2,
        });
      }
      await platform.destroyApp(name, (line) => io.out(`${line}\n`));
      platform.users.appDestroyed(originOf(io), name);
      io.out(`-----> Destroyed ${name}\n`);
    },
  },
];
