import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { defaults } from '../../core/config.js';
import { SlipwayError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { AppStore } from '../../core/store.js';
import { openDb } from '../../core/db.js';
import { ServiceStore } from '../../core/service-store.js';
import type { ServiceManager } from '../../services/service-manager.js';
import { UserStore } from '../../core/users.js';
import { commands, runCommand, type CommandIO, type Platform } from '../../receiver/commands/index.js';
import { SshKeyStore } from '../../receiver/ssh-keys.js';
import { TokenStore } from '../../receiver/tokens.js';
import { discoverOidc } from '../../auth/oidc.js';

/**
 * A Platform made of the real stores in a temp dir and nothing that reaches Docker or git:
 * enough to drive every command's argument handling. Anything a command would do beyond the
 * stores fails as a SlipwayError; so does any field this file does not know (fields other areas
 * add later), so a command that validates its input first is tested all the same.
 */
export interface MiniPlatform {
  platform: Platform;
  dir: string;
  /** Errors the command layer logged as unexpected (not a SlipwayError): each is a bug. */
  unexpected: string[];
  /** Every file under dir, relative: state that commands created. */
  files(): Promise<string[]>;
  run(argv: string[], actor?: string): Promise<{ code: number; out: string; err: string }>;
  close(): Promise<void>;
}

export async function miniPlatform(): Promise<MiniPlatform> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-mini-'));
  const unexpected: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      unexpected.push(chunk.toString());
      cb();
    },
  });
  const db = openDb(path.join(dir, 'slipway.db'));
  const apps = new AppStore(path.join(dir, 'apps'));
  await apps.init();
  const offline = (what: string) => () => Promise.reject(new SlipwayError('E_INTERNAL', `${what} is not available on the test platform`));
  const partial: Partial<Platform> = {
    config: defaults(dir),
    logger: createLogger('error', sink),
    apps,
    keys: new SshKeyStore(db),
    tokens: new TokenStore(db),
    users: new UserStore(db),
    status: offline('status'),
    createApp: async (name) => void (await apps.create(name)),
    destroyApp: offline('destroyApp'),
    processes: async () => [],
    // The store only: no engine here, so every service reads as having no container.
    services: servicesWithoutEngine(new ServiceStore(db)),
    routed: () => 0,
    buildStack: offline('buildStack'),
    sso: { check: async (s) => void (await discoverOidc(s)) },
  };
  const platform = new Proxy(partial, {
    get: (target, prop, receiver) => (prop in target ? Reflect.get(target, prop, receiver) : unavailable(String(prop))),
  }) as Platform;
  const files = async (): Promise<string[]> => (await fs.readdir(dir, { recursive: true })).map(String).sort();
  return {
    platform,
    dir,
    unexpected,
    files,
    async run(argv, actor = 'fuzz') {
      let out = '';
      let err = '';
      const io: CommandIO = {
        out: (d) => void (out += d),
        err: (d) => void (err += d),
        readStdin: async () => '',
        signal: new AbortController().signal,
        actor,
        // The fuzz runs half its lines as the local admin would send them.
        local: actor === 'cli',
        // Argument handling is under test here, not rights: the fuzz acts as the admin.
        user: 'admin',
      };
      const code = await runCommand(commands, argv, io, platform);
      return { code, out, err };
    },
    close: async () => {
      db.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** A stand-in for a service the test platform lacks: any call through it fails cleanly. */
function unavailable(name: string): unknown {
  return new Proxy(() => undefined, {
    get: (_target, prop) => (prop === 'then' ? undefined : unavailable(`${name}.${String(prop)}`)),
    apply: () => {
      throw new SlipwayError('E_INTERNAL', `${name} is not available on the test platform`);
    },
  });
}

function servicesWithoutEngine(store: ServiceStore): Platform['services'] {
  const partial: Partial<ServiceManager> = { store, list: (kind) => store.list(kind), condition: async () => 'missing' };
  return new Proxy(partial, { get: (target, prop, receiver) => (prop in target ? Reflect.get(target, prop, receiver) : unavailable(`services.${String(prop)}`)) }) as ServiceManager;
}
