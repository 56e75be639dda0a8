import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Ajv, type JSONSchemaType } from 'ajv';
import { SlipwayError } from '../core/errors.js';
import type { HealthCheck } from '../core/store.js';

interface AppJson {
  healthchecks?: { web?: HealthCheck[] };
  /** Slipway's own settings (README "What a Dockerfile app may do"). */
  slipway?: { readonly?: boolean };
}

/** What Slipway reads from app.json. */
export interface AppSettings {
  healthchecks: HealthCheck[];
  /** Run the release's containers with a read-only root filesystem (and a tmpfs /tmp). */
  readonly: boolean;
}

const check: JSONSchemaType<HealthCheck> = {
  type: 'object',
  additionalProperties: false,
  required: ['path'],
  properties: {
    type: { type: 'string', nullable: true, enum: ['startup', 'liveness', 'readiness'] },
    name: { type: 'string', nullable: true, maxLength: 100 },
    description: { type: 'string', nullable: true, maxLength: 1000 },
    // A request target, never a URL: the host and port are always the new container's.
    path: { type: 'string', pattern: '^/[\\x21-\\x7e]*$', maxLength: 2048 },
    content: { type: 'string', nullable: true, maxLength: 10_000 },
    attempts: { type: 'integer', nullable: true, minimum: 1, maximum: 100 },
    timeout: { type: 'number', nullable: true, exclusiveMinimum: 0, maximum: 600 },
    wait: { type: 'number', nullable: true, minimum: 0, maximum: 600 },
    initialDelay: { type: 'number', nullable: true, minimum: 0, maximum: 600 },
  },
};

// Only the part Slipway reads is checked; the rest of app.json (scripts, env, ...) is Dokku's or
// Heroku's business and is ignored, never executed.
const schema: JSONSchemaType<AppJson> = {
  type: 'object',
  required: [],
  properties: {
    healthchecks: {
      type: 'object',
      nullable: true,
      required: [],
      properties: { web: { type: 'array', nullable: true, items: check, maxItems: 20 } },
    },
    // Our own key: a typo in it must fail the push, not silently leave the app writable.
    slipway: {
      type: 'object',
      nullable: true,
      required: [],
      additionalProperties: false,
      properties: { readonly: { type: 'boolean', nullable: true } },
    },
  },
};

const validate = new Ajv({ allErrors: false }).compile(schema);

/** Parses app.json text; returns the web startup checks (empty when none). */
export function parseAppJson(text: string): HealthCheck[] {
  return parseAppSettings(text).healthchecks;
}

/** Parses app.json text: the web startup checks and Slipway's own settings. */
export function parseAppSettings(text: string): AppSettings {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SlipwayError('E_APP_JSON', `app.json is not valid JSON (${(err as Error).message}): fix it and push again`);
  }
  if (!validate(value)) {
    const e = validate.errors?.[0];
    const extra = (e?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
    const field = `${(e?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.')}${extra ? `.${extra}` : ''}` || '(root)';
    const why = extra ? 'is not a known field' : (e?.message ?? 'is invalid');
    throw new SlipwayError('E_APP_JSON', `app.json: ${field} ${why}: fix it and push again`);
  }
  return { healthchecks: value.healthchecks?.web ?? [], readonly: value.slipway?.readonly === true };
}

export const DEFAULT_ATTEMPTS = 5;
export const DEFAULT_TIMEOUT_S = 5;
const RETRY_INTERVAL_MS = 1000;

export interface CheckResult {
  ok: boolean;
  /** What the last attempt saw, for the push output. */
  detail: string;
}

/** One GET to the container's host port; the path goes out as the request target, byte for byte. */
function attempt(port: number, c: HealthCheck, signal?: AbortSignal): Promise<CheckResult> {
  const timeoutMs = (c.timeout ?? DEFAULT_TIMEOUT_S) * 1000;
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: c.path, agent: false, headers: { 'user-agent': 'slipway-healthcheck' }, ...(signal ? { signal } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        // Enough to find `content` in any sensible health page; the rest is dropped.
        if (size < 1024 * 1024) chunks.push(d);
        size += d.length;
      });
      res.on('error', (err) => resolve({ ok: false, detail: err.message }));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const body = Buffer.concat(chunks).toString('utf8');
        const snippet = JSON.stringify(body.slice(0, 200));
        if (status < 200 || status >= 400) resolve({ ok: false, detail: `answered ${status}: ${snippet}` });
        else if (c.content !== undefined && !body.includes(c.content)) {
          resolve({ ok: false, detail: `answered ${status} without ${JSON.stringify(c.content)}: ${snippet}` });
        } else resolve({ ok: true, detail: `answered ${status}` });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err) => resolve({ ok: false, detail: err.message }));
  });
}

/** The checks a new web container must pass before it takes traffic (Dokku's `startup` type, the default). */
export function startupChecks(checks: readonly HealthCheck[]): HealthCheck[] {
  return checks.filter((c) => (c.type ?? 'startup') === 'startup');
}

/**
 * Runs every startup check against one new web container; throws E_HEALTHCHECK naming the
 * check and what its last attempt saw.
 */
export async function runHealthChecks(o: {
  hostPort: number;
  container: string;
  checks: readonly HealthCheck[];
  progress: (line: string) => void;
  signal?: AbortSignal;
}): Promise<void> {
  for (const c of startupChecks(o.checks)) {
    const name = c.name ?? c.path;
    const delay = c.wait ?? c.initialDelay ?? 0;
    if (delay > 0) await sleep(delay * 1000, undefined, o.signal ? { signal: o.signal } : {});
    const attempts = c.attempts ?? DEFAULT_ATTEMPTS;
    let last: CheckResult = { ok: false, detail: 'not run' };
    for (let i = 1; i <= attempts; i++) {
      o.signal?.throwIfAborted();
      last = await attempt(o.hostPort, c, o.signal);
      if (last.ok) break;
      o.progress(`${o.container}: check "${name}" attempt ${i}/${attempts}: GET ${c.path} ${last.detail}`);
      if (i < attempts) await sleep(RETRY_INTERVAL_MS, undefined, o.signal ? { signal: o.signal } : {});
    }
    if (!last.ok) {
      throw new SlipwayError('E_HEALTHCHECK', `${o.container} failed health check "${name}" (app.json): GET ${c.path} ${last.detail} after ${attempts} attempts`);
    }
    o.progress(`${o.container}: check "${name}" passed (GET ${c.path} ${last.detail})`);
  }
}
