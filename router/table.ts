import fs from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import { SlipwayError } from '../core/errors.js';
import { writeFileAtomicText } from '../core/files.js';

/**
 * The route table: the only thing the router and the platform daemon share. The daemon writes it
 * atomically; the router reads it and keeps serving from the last good copy while the daemon is
 * down. Keep this format stable: both sides may run different builds during an upgrade.
 */
export interface AppRoute {
  /**
   * "127.0.0.1:PORT" each; [] means the app exists but nothing healthy serves it (503). With
   * stable fronts, the app's front alone, healthy or not (then it leads to `idle`).
   */
  upstreams: string[];
  /**
   * True: only signed-in users with the right to view reach it (nginx asks the auth server
   * first). Absent or false: served to anyone, as before users existed (README "Users and access").
   */
  private?: boolean;
}

export interface RouteTable {
  version: 1;
  /** Apps answer at <app>.<domain>. */
  domain: string;
  /** Keyed by app name. */
  apps: Record<string, AppRoute>;
  /** Upstream for /_git/...: "127.0.0.1:PORT" or "unix:/abs/path.sock"; null means 503. */
  git: string | null;
  /**
   * Upstream for the App Manager and Portal (/Manager, /Portal, /_web/ on the platform's own host):
   * a unix socket; null or absent means 503. Optional, so routers and tables from before it agree.
   */
  web?: string | null;
  /**
   * Where nginx itself answers the idle 503 of an app routed through a stable front while nothing
   * healthy serves it: its front then leads here, so the first and the last healthy process
   * change no rendered config (docs/router.md, "Stable fronts"). Absent: no fronts, and such an
   * app is listed with [] instead.
   */
  idle?: string;
}

const APP_NAME = '^[a-z][a-z0-9-]{0,29}$';
const HOST_PORT = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$';
const UNIX_SOCKET = '^unix:/[^\\0]*$';
const DOMAIN = '^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$';

// Unknown extra fields are tolerated (and dropped) so an older router keeps working with a newer
// daemon that adds optional fields; a real format change bumps `version`.
const schema = {
  type: 'object',
  required: ['version', 'domain', 'apps', 'git'],
  properties: {
    version: { const: 1 },
    domain: { type: 'string', minLength: 1, maxLength: 200, pattern: DOMAIN },
    apps: {
      type: 'object',
      propertyNames: { pattern: APP_NAME },
      additionalProperties: {
        type: 'object',
        required: ['upstreams'],
        properties: {
          upstreams: { type: 'array', maxItems: 1000, items: { type: 'string', pattern: HOST_PORT } },
          private: { type: 'boolean' },
        },
      },
    },
    git: { anyOf: [{ type: 'null' }, { type: 'string', pattern: HOST_PORT }, { type: 'string', pattern: UNIX_SOCKET }] },
    web: { anyOf: [{ type: 'null' }, { type: 'string', pattern: UNIX_SOCKET }] },
    idle: { type: 'string', pattern: HOST_PORT },
  },
} as const;

const validate = new Ajv({ allErrors: false }).compile(schema);

function describe(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'invalid';
  const where = e.instancePath || '/';
  const extra = e.keyword === 'propertyNames' ? ` (app names match ${APP_NAME})` : '';
  return `${where} ${e.message ?? 'is invalid'}${extra}`;
}

function validPort(target: string): boolean {
  if (target.startsWith('unix:')) return true;
  const port = Number(target.slice(target.lastIndexOf(':') + 1));
  return port >= 1 && port <= 65535;
}

export function emptyRouteTable(domain: string): RouteTable {
  return { version: 1, domain, apps: {}, git: null };
}

/** Validates an already-parsed value and returns a normalised copy with only the known fields. */
function fromValue(value: unknown): RouteTable {
  if (!validate(value)) throw new SlipwayError('E_ROUTES', `invalid route table: ${describe(validate.errors)}`);
  const v = value as RouteTable;
  const apps: Record<string, AppRoute> = {};
  for (const [name, route] of Object.entries(v.apps)) {
    const bad = route.upstreams.find((u) => !validPort(u));
    if (bad !== undefined) throw new SlipwayError('E_ROUTES', `invalid route table: /apps/${name}: port out of range in ${bad}`);
    apps[name] = { upstreams: [...route.upstreams], ...(route.private === true ? { private: true } : {}) };
  }
  if (v.git !== null && !validPort(v.git)) throw new SlipwayError('E_ROUTES', `invalid route table: /git: port out of range`);
  if (v.idle !== undefined && !validPort(v.idle)) throw new SlipwayError('E_ROUTES', `invalid route table: /idle: port out of range`);
  return { version: 1, domain: v.domain.toLowerCase(), apps, git: v.git, ...(v.web === undefined ? {} : { web: v.web }), ...(v.idle === undefined ? {} : { idle: v.idle }) };
}

export function parseRouteTable(text: string): RouteTable {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SlipwayError('E_ROUTES', 'invalid route table: not valid JSON', { cause: err });
  }
  return fromValue(value);
}

/** Validates before serialising so a bad table is never written for the router to choke on. */
export function serializeRouteTable(t: RouteTable): string {
  return `${JSON.stringify(fromValue(t), null, 2)}\n`;
}

/** Throws the fs error (code ENOENT) when the file is missing, SlipwayError E_ROUTES when invalid. */
export async function readRouteTable(file: string): Promise<RouteTable> {
  return parseRouteTable(await fs.readFile(file, 'utf8'));
}

/** Atomic (temp file + rename), so the router never reads a torn table. World-readable: no secrets. */
export async function writeRouteTable(file: string, t: RouteTable): Promise<void> {
  await writeFileAtomicText(file, serializeRouteTable(t), 0o644);
}
