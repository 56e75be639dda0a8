import { parseAppName, parseNewAppName } from '../../core/app-name.js';
import { SlipwayError } from '../../core/errors.js';
import { currentRelease } from '../../core/store.js';
import { appStatus, parsePortalFields } from '../../core/portal.js';
import { deployBranchOf } from '../../hooks/deploy-branch.js';
import { canManage, canView } from '../../core/access.js';
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
      const all = platform.users.accessOfAll();
      const accessOf = (name: string) => all.get(name) ?? { name, level: 'restricted' as const, owners: [], users: [], groups: [] };
      const apps = (await platform.apps.list()).filter((a) => caller.role === 'admin' || canView(caller, accessOf(a.name)));
      if (flags.json) {
        // What the App Manager and the Portal list (docs/web.md); the first three fields are the old ones.
        const { httpPort, domain } = platform.config;
        io.out(
          json(
            apps.map((a) => {
              const access = accessOf(a.name);
              const release = currentRelease(a);
              return {
                name: a.name,
                release: a.current,
                createdAt: a.createdAt,
                url: `http://${a.name}.${domain}:${httpPort}/`,
                status: appStatus(a, platform.routed(a.name)),
                lastDeploy: release ? { at: release.createdAt, by: release.by, commit: release.commit, description: release.description } : null,
                owners: access.owners,
                access: access.level,
                manage: canManage(caller, access),
                title: a.portal?.title ?? '',
                description: a.portal?.description ?? '',
                tags: a.portal?.tags ?? [],
              };
            }),
          ),
        );
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
        title: app.portal?.title ?? '',
        description: app.portal?.description ?? '',
        tags: app.portal?.tags ?? [],
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
    name: 'apps:set',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).map((a) => a.split('=')[0]).join(',') }),
    usage: '<app> [title=...] [description=...] [tags=a,b]',
    summary: 'Set how the Portal shows an app: its title, description and tags (empty clears)',
    args: [2, 4],
    async run(io, { positionals }, platform) {
      const [name, ...fields] = positionals as [string, ...string[]];
      const app = parseAppName(name);
      const change = parsePortalFields(fields);
      const next = await platform.apps.update(app, (a) => {
        a.portal = { title: '', description: '', tags: [], ...a.portal, ...change };
      });
      io.out(`-----> ${app} on the Portal: ${next.portal!.title || '(no title)'}${next.portal!.tags.length ? ` [${next.portal!.tags.join(', ')}]` : ''}\n`);
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
