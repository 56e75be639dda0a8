import { can } from '../../core/access.js';
import { parseAppName } from '../../core/app-name.js';
import { serviceAccess } from '../../core/service-store.js';
import { callerOf } from './caller.js';
import { SlipwayError } from '../../core/errors.js';
import { json, table } from './output.js';
import type { Command } from './types.js';

export const platformCommands: Command[] = [
  {
    name: 'status',
    access: 'any',
    usage: '[--json]',
    summary: 'Show whether the daemon, SSH receiver, router and Docker accept work',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const s = await platform.status();
      // The services the caller may manage (others' stay unnamed, like apps: core/access.ts).
      // A caller without a user that may act still gets the platform's own rows.
      const actor = (() => {
        try {
          return callerOf(io, platform);
        } catch {
          return null;
        }
      })();
      const mine = actor === null ? [] : platform.services.list().filter((x) => can(actor, 'app:manage', serviceAccess(x)) === 'allow');
      const services = await Promise.all(
        mine.map(async (x) => ({ kind: x.kind, name: x.name, condition: await platform.services.condition(x.kind, x.name), links: platform.services.store.links(x.kind, x.name).map((l) => l.app) })),
      );
      if (flags.json) {
        io.out(json({ ...s, services }));
      } else {
        io.out(
          table([
            ['daemon', s.daemon],
            ['ssh', s.ssh],
            ['http', s.http],
            ['router', s.router],
            ['docker', s.docker],
            ['stack', s.stackImage],
            ['apps', String(s.apps)],
            ...(s.swarm !== undefined ? [['swarm', s.swarm]] : []),
            ...(s.registry !== undefined ? [['registry', s.registry]] : []),
            ...services.map((x) => [`${x.kind} ${x.name}`, `${x.condition}${x.links.length > 0 ? ` (linked: ${x.links.join(', ')})` : ''}`]),
          ]),
        );
      }
      // Exit 0 only when every part accepts work, so scripts can wait on `slipway status`.
      return s.router === 'running' && s.docker.startsWith('running') ? 0 : 1;
    },
  },
  {
    name: 'ps',
    access: 'app:manage',
    usage: '<app> [--json]',
    summary: 'List an app\'s containers: <app>.<type>.<n> <state> <release>',
    flags: { json: { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = parseAppName(positionals[0]!);
      await platform.apps.get(app);
      const procs = await platform.processes(app);
      if (flags.json) {
        io.out(json(procs));
        return;
      }
      if (procs.length === 0) {
        io.out(`no containers: deploy with \`git push\` or scale with \`slipway ps:scale ${app} web=1\`\n`);
      } else {
        // The contract fixes this format: `<app>.<type>.<n> <state> <release>`, one space apart.
        // Limits (ps:set) follow the three fixed columns, only when set.
        const limits = (p: (typeof procs)[number]) => `${p.memory ? ` memory=${p.memory}` : ''}${p.cpus ? ` cpus=${p.cpus}` : ''}`;
        io.out(procs.map((p) => `${p.name} ${p.state} ${p.release === null ? '-' : `v${p.release}`}${limits(p)}\n`).join(''));
      }
      // Linked services after the containers, one line each: `service <kind> <name> <condition>`.
      for (const l of platform.services.store.linksOfApp(app)) io.out(`service ${l.kind} ${l.name} ${await platform.services.condition(l.kind, l.name)}\n`);
    },
  },
  {
    name: 'stack:build',
    access: 'admin',
    usage: '',
    summary: 'Build the stack image (Debian, from this machine\'s apt sources) that builds and apps run on',
    args: [0, 0],
    async run(io, _parsed, platform) {
      // It reaches the network (apt) and retags the image every app and build shares; over SSH
      // it would also outlive the client. The local admin runs it (docs/security.md).
      if (!io.local) throw new SlipwayError('E_AUTH', 'permission denied: stack:build runs only for the local admin; run `slipway stack:build` on the server as root');
      const ref = await platform.buildStack((line) => io.out(`${line}\n`));
      io.out(`-----> Stack image ${ref} ready\n`);
    },
  },
  {
    name: 'prune',
    access: 'admin',
    usage: '[--all] [--json]',
    summary: 'Remove what this instance no longer uses: unused runtime images and unpacked runtimes, leftover build containers (--all: the default runtime kept for new apps too)',
    flags: { all: { type: 'boolean' }, json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      // It holds every build of the platform while it runs: the local admin's decision (README "Cleaning up").
      if (!io.local) throw new SlipwayError('E_AUTH', 'permission denied: prune runs only for the local admin; run `slipway prune` on the server as root');
      const r = await platform.prune(flags.all === true, flags.json ? () => undefined : (line) => io.out(`       ${line}\n`));
      if (flags.json) {
        io.out(json(r));
        return;
      }
      io.out(`-----> Pruned ${r.containers.length} containers, ${r.images.length} images, ${r.runtimes.length} unpacked runtimes\n`);
    },
  },
];
