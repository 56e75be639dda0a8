import { Ajv, type JSONSchemaType } from 'ajv';
import { SlipwayError } from './errors.js';
import { readJson } from './files.js';
import { pathsFor, type Paths } from './paths.js';

/**
 * The platform's settings. Validated once, here, at the edge: the rest of the code receives a
 * typed, complete `Config` and never re-checks it. Sources, lowest precedence first: defaults,
 * `$SLIPWAY_HOME/config.json`, then `slipway server` flags.
 */
export interface Config {
  home: string;
  listen: string;
  sshPort: number;
  httpPort: number;
  domain: string;
  httpsPort: number | null;
  tlsCert: string | null;
  tlsKey: string | null;
  /** Builds of different apps that may run at once. */
  buildConcurrency: number;
  buildTimeoutSeconds: number;
  buildMemory: string;
  buildPidsLimit: number;
  /** Largest push accepted, in bytes. */
  maxPushBytes: number;
  /** The router's access and error logs rotate past this size (3 old copies kept). */
  routerLogMaxBytes: number;
  /** Node range used when package.json has no engines.node. */
  defaultNodeRange: string;
  /**
   * Unpack language runtimes and make their shared image before the first push needs them: at
   * daemon start for the mirror's `defaultNodeRange` Node.js, and at `mirror:add node` (README
   * "Server options").
   */
  prepareRuntimes: boolean;
  /** npm registry for pull-through; null means the mirror is strict (airgapped). */
  npmUpstream: string | null;
  pypiUpstream: string | null;
  /** How long a new web container must stay up after its port opens before it takes traffic. */
  healthSettleMs: number;
  /** How long old containers keep serving in-flight requests after the switch. */
  drainMs: number;
  stopGraceSeconds: number;
  keepReleases: number;
  /** Backups kept per service (`<kind>:backup`); older ones are removed (README "Services"). */
  serviceBackupsKeep: number;
  /**
   * Hosts, addresses and CIDRs a `.buildpacks` URL may reach although they are loopback, private
   * or the platform's own (docs/security.md); empty: public addresses only.
   */
  buildpackUrlAllow: string[];
  /** False forbids `access:set <app> public` (README, "Users and access"). */
  allowPublicApps: boolean;
  /** A web sign-in ends after this long without a request (README, "Users and access"). */
  sessionIdleMinutes: number;
  /** ... and this long after it began, whatever its use. */
  sessionMaxHours: number;
  /** The address a swarm this platform initialises advertises (README "Schedulers"). */
  swarmAdvertiseAddr: string;
  /**
   * The address the platform registry binds and every node pulls release images from (README
   * "Schedulers", adding a node): loopback by default, which only this machine's engine reaches.
   */
  registryAddress: string;
  /** The platform registry's port; null: a free one, chosen once and kept. */
  registryPort: number | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export type ConfigInput = Partial<Config>;

const schema: JSONSchemaType<ConfigInput> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    home: { type: 'string', nullable: true, minLength: 1 },
    listen: { type: 'string', nullable: true, minLength: 1, pattern: '^[0-9a-fA-F:.]+$|^localhost$' },
    sshPort: { type: 'integer', nullable: true, minimum: 0, maximum: 65535 },
    httpPort: { type: 'integer', nullable: true, minimum: 0, maximum: 65535 },
    domain: {
      type: 'string',
      nullable: true,
      pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$',
      maxLength: 200,
    },
    httpsPort: { type: 'integer', nullable: true, minimum: 0, maximum: 65535 },
    tlsCert: { type: 'string', nullable: true },
    tlsKey: { type: 'string', nullable: true },
    buildConcurrency: { type: 'integer', nullable: true, minimum: 1, maximum: 64 },
    buildTimeoutSeconds: { type: 'integer', nullable: true, minimum: 10, maximum: 86_400 },
    buildMemory: { type: 'string', nullable: true, pattern: '^[0-9]+[kmg]?$' },
    buildPidsLimit: { type: 'integer', nullable: true, minimum: 64 },
    maxPushBytes: { type: 'integer', nullable: true, minimum: 1024 },
    routerLogMaxBytes: { type: 'integer', nullable: true, minimum: 1024 * 1024 },
    defaultNodeRange: { type: 'string', nullable: true, minLength: 1 },
    prepareRuntimes: { type: 'boolean', nullable: true },
    npmUpstream: { type: 'string', nullable: true, pattern: '^https?://' },
    pypiUpstream: { type: 'string', nullable: true, pattern: '^https?://' },
    healthSettleMs: { type: 'integer', nullable: true, minimum: 0, maximum: 600_000 },
    drainMs: { type: 'integer', nullable: true, minimum: 0, maximum: 600_000 },
    stopGraceSeconds: { type: 'integer', nullable: true, minimum: 0, maximum: 3600 },
    keepReleases: { type: 'integer', nullable: true, minimum: 1, maximum: 1000 },
    serviceBackupsKeep: { type: 'integer', nullable: true, minimum: 1, maximum: 1000 },
    allowPublicApps: { type: 'boolean', nullable: true },
    sessionIdleMinutes: { type: 'integer', nullable: true, minimum: 1, maximum: 525_600 },
    sessionMaxHours: { type: 'integer', nullable: true, minimum: 1, maximum: 8760 },
    swarmAdvertiseAddr: { type: 'string', nullable: true, pattern: '^[0-9a-fA-F:.]+$' },
    // An IPv4 address image references can name (no brackets), never "every interface".
    registryAddress: { type: 'string', nullable: true, pattern: '^(?!0\\.0\\.0\\.0$)[0-9]{1,3}(\\.[0-9]{1,3}){3}$' },
    registryPort: { type: 'integer', nullable: true, minimum: 1, maximum: 65535 },
    buildpackUrlAllow: {
      type: 'array',
      nullable: true,
      maxItems: 256,
      items: { type: 'string', minLength: 1, maxLength: 253, pattern: '^(\\[?[0-9a-fA-F:.]+\\]?(/[0-9]{1,3})?|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\\.?)$' },
    },
    logLevel: {
      type: 'string',
      nullable: true,
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    },
  },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

export function defaults(home: string): Config {
  return {
    home,
    listen: '127.0.0.1',
    sshPort: 2222,
    httpPort: 8080,
    domain: 'localhost',
    httpsPort: null,
    tlsCert: null,
    tlsKey: null,
    buildConcurrency: 2,
    buildTimeoutSeconds: 900,
    buildMemory: '2g',
    buildPidsLimit: 1024,
    maxPushBytes: 1024 * 1024 * 1024,
    routerLogMaxBytes: 64 * 1024 * 1024,
    // The Node.js LTS line current when this release was cut; apps pin their own with engines.node.
    defaultNodeRange: '24.x',
    // On: the first deploy of a Node app then skips about 10 s (README "How fast a deploy is").
    prepareRuntimes: true,
    npmUpstream: 'https://registry.npmjs.org/',
    pypiUpstream: null,
    healthSettleMs: 1500,
    drainMs: 2000,
    stopGraceSeconds: 10,
    keepReleases: 5,
    serviceBackupsKeep: 7,
    buildpackUrlAllow: [],
    allowPublicApps: true,
    sessionIdleMinutes: 12 * 60,
    sessionMaxHours: 7 * 24,
    swarmAdvertiseAddr: '127.0.0.1',
    registryAddress: '127.0.0.1',
    registryPort: null,
    logLevel: 'info',
  };
}

/** Validates one layer of settings; the message names every offending field. */
export function checkConfigInput(input: unknown, source: string): ConfigInput {
  if (!validate(input)) {
    const what = (validate.errors ?? [])
      .map((e) => {
        const extra = (e.params as { additionalProperty?: string }).additionalProperty;
        const field = e.instancePath.replace(/^\//, '') || extra || '(root)';
        return `${field} ${e.message ?? 'is invalid'}`;
      })
      .join('; ');
    throw new SlipwayError('E_CONFIG', `invalid settings in ${source}: ${what}`);
  }
  return input;
}

export function mergeConfig(home: string, ...layers: ConfigInput[]): Config {
  const config = defaults(home);
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (v !== undefined) (config as unknown as Record<string, unknown>)[k] = v;
    }
  }
  config.home = home;
  if ((config.httpsPort === null) !== (config.tlsCert === null) || (config.tlsCert === null) !== (config.tlsKey === null)) {
    throw new SlipwayError('E_CONFIG', '--https-port, --tls-cert and --tls-key go together: give all three or none');
  }
  return config;
}

/** Loads `$SLIPWAY_HOME/config.json` (optional) under the given overrides. */
export async function loadConfig(home: string, overrides: ConfigInput = {}): Promise<{ config: Config; paths: Paths }> {
  const paths = pathsFor(home);
  const fileLayer = checkConfigInput(await readJson<unknown>(paths.configFile, {}), paths.configFile);
  const flagLayer = checkConfigInput(overrides, 'command-line flags');
  return { config: mergeConfig(home, fileLayer, flagLayer), paths };
}
