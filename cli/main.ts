import type tty from 'node:tty';
import { parseArgs } from 'node:util';
import { SlipwayError, oneLine, usageError } from '../core/errors.js';
import { loadConfig, type ConfigInput } from '../core/config.js';
import { createLogger } from '../core/log.js';
import { defaultHome, pathsFor } from '../core/paths.js';
import { ensureNginx, reloadRouter, stopRouter } from '../platform/router-process.js';
import { removeFrontsOfHome } from '../platform/fronts.js';
import { ensureDocker } from '../runtime/host-setup.js';
import { ensureSwarm } from '../runtime/docker-swarm/swarm.js';
import { runServer } from '../platform/server.js';
import { ensureStackImage } from '../runtime/stack.js';
import { ensureServiceImage } from '../runtime/service-images.js';
import { SERVICE_KINDS } from '../core/service-store.js';
import { runRemote } from './client.js';
import { absolutePathArgs } from '../receiver/commands/buildpacks.js';
import { commands } from '../receiver/commands/index.js';

const serverFlags = {
  'ssh-port': { type: 'string' },
  'http-port': { type: 'string' },
  listen: { type: 'string' },
  domain: { type: 'string' },
  'https-port': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const;

function serverOverrides(argv: string[]): ConfigInput {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: serverFlags, strict: true, allowPositionals: false }));
  } catch (err) {
    throw usageError(`server: ${oneLine(err).split('. ')[0]}: usage: slipway server [--ssh-port N] [--http-port N] [--listen ADDR] [--domain D] [--https-port N --tls-cert F --tls-key F]`);
  }
  const int = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d{1,5}$/.test(v)) throw usageError(`--${flag} must be a port number, not "${v}"`);
    return Number(v);
  };
  const out: ConfigInput = {};
  const set = <K extends keyof ConfigInput>(k: K, v: ConfigInput[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('sshPort', int('ssh-port', values['ssh-port']));
  set('httpPort', int('http-port', values['http-port']));
  set('httpsPort', int('https-port', values['https-port']));
  set('listen', values.listen);
  set('domain', values.domain);
  set('tlsCert', values['tls-cert']);
  set('tlsKey', values['tls-key']);
  return out;
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

async function main(argv: string[]): Promise<number> {
  const home = defaultHome();
  const [command, ...rest] = argv;
  switch (command) {
    case 'server':
      await runServer(home, serverOverrides(rest));
      return -1; // keeps running until a signal
    case 'setup': {
      // What `./scripts/test` and operators run to prepare a machine without starting the platform.
      const { config } = await loadConfig(home);
      // Progress lines speak to the operator here; only problems need the structured log.
      const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
      const progress = (line: string) => process.stdout.write(`${line}\n`);
      const docker = await ensureDocker({ progress, logger });
      await ensureNginx({ progress, logger });
      await ensureStackImage(docker, { progress, logger });
      // The service images too (README "Services"), so CI and the first create need no build; cached by recipe hash.
      for (const kind of SERVICE_KINDS) await ensureServiceImage(docker, kind, { progress, logger });
      // As at server start: without a swarm only docker-swarm is lost (README "Schedulers").
      await ensureSwarm(docker, { advertiseAddr: config.swarmAdvertiseAddr, progress }).catch((err: unknown) => progress(` !     docker-swarm unavailable: ${oneLine(err)}`));
      return 0;
    }
    case 'router:reload': {
      const { config, paths } = await loadConfig(home);
      const reloaded = await reloadRouter(config, paths, createLogger('warn'));
      process.stdout.write(reloaded ? '-----> Router reloaded\n' : 'no router is running for this SLIPWAY_HOME: start it with `slipway server`\n');
      return reloaded ? 0 : 1;
    }
    case 'router:stop': {
      const paths = pathsFor(home);
      const stopped = await stopRouter(paths);
      // With the router gone nothing uses the apps' fronts: this instance's NAT rules go too.
      await removeFrontsOfHome(paths);
      process.stdout.write(stopped ? '-----> Router stopped\n' : 'no router is running for this SLIPWAY_HOME\n');
      return 0;
    }
    case '--version':
    case 'version':
      process.stdout.write('slipway 0.1.0\n');
      return 0;
    default: {
      // `-` reads content; --password-stdin and --secret-stdin a secret, never from a terminal (it would echo).
      const wantsStdin = rest.includes('-') || rest.includes('--password-stdin') || rest.includes('--secret-stdin');
      // A dump on standard input (`postgres:import x < file`) streams; it may be larger than memory.
      const spec = commands.find((c) => c.name === command);
      // An interactive command (`postgres:connect`) always streams, and at a terminal takes it over.
      const streams = spec?.terminal === true || (spec?.streamIn === true && !process.stdin.isTTY);
      const atTerminal = spec?.terminal === true && process.stdin.isTTY && process.stdout.isTTY;
      const stdin = wantsStdin && !streams && !process.stdin.isTTY ? await readStdin() : undefined;
      return runRemote(pathsFor(home).socket, absolutePathArgs(argv, process.cwd()), stdin, {
        ...(streams ? { streamStdin: process.stdin } : {}),
        ...(atTerminal ? { terminal: { input: process.stdin as tty.ReadStream, output: process.stdout as tty.WriteStream } } : {}),
      });
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`slipway: ${oneLine(err)}\n`);
    process.exitCode = err instanceof SlipwayError ? err.exitCode : 1;
  },
);
