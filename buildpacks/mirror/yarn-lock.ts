import { SlipwayError } from '../../core/errors.js';
import { isNpmName } from './layout.js';
import type { LockedPackage } from './lockfile.js';

const SEMVER = /^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/** A registry tarball URL: `<registry>/<name>/-/<base>-<version>.tgz` (yarn keeps a `#sha1` suffix). */
const REGISTRY_TARBALL = /^https?:\/\/[^/]+\/(?:.*\/)?(?:@[^/]+(?:\/|%2f))?[^/]+\/-\/[^/]+\.tgz(?:#.*)?$/i;

/**
 * The registry packages a yarn v1 lockfile installs, deduplicated. The format is yarn's own (not
 * YAML): unindented lines are `spec[, spec...]:` keys, their indented lines are `field value`
 * pairs, with JSON-style quoting. Git, file and other non-registry sources are left out: they
 * cannot come from the mirror. Pure.
 */
export function yarnLockPackages(text: string): LockedPackage[] {
  if (/^__metadata:/m.test(text)) {
    throw new SlipwayError('E_BUILD', 'yarn.lock is a yarn 2+ (berry) lockfile, which is not supported offline yet: use yarn 1 or npm');
  }
  const found = new Map<string, LockedPackage>();
  let specs: string[] | null = null;
  let fields: Record<string, string> = {};
  const flush = () => {
    if (specs !== null) {
      const p = entryPackage(specs, fields);
      if (p !== null && !found.has(`${p.name}@${p.version}`)) found.set(`${p.name}@${p.version}`, p);
    }
    specs = null;
    fields = {};
  };
  for (const raw of text.split(/\r?\n/)) {
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const indent = raw.length - raw.trimStart().length;
    const line = raw.trim();
    if (indent === 0) {
      flush();
      if (!line.endsWith(':')) throw new SlipwayError('E_BUILD', `yarn.lock is not a yarn v1 lockfile (unexpected line ${JSON.stringify(line.slice(0, 80))}): run \`yarn install\` with yarn 1, commit yarn.lock and push again`);
      specs = splitKeys(line.slice(0, -1));
    } else if (indent === 2 && specs !== null) {
      // Nested blocks (`dependencies:`) end in a colon and hold nothing we need.
      const m = /^("(?:[^"\\]|\\.)*"|\S+)\s+(.+)$/.exec(line);
      if (m) fields[unquote(m[1]!)] = unquote(m[2]!);
    }
  }
  flush();
  return [...found.values()];
}

function entryPackage(specs: string[], fields: Record<string, string>): LockedPackage | null {
  const { version, resolved, integrity } = fields;
  if (version === undefined || !SEMVER.test(version)) return null;
  if (resolved === undefined || !REGISTRY_TARBALL.test(resolved)) return null;
  const name = specName(specs[0] ?? '');
  if (name === null || !isNpmName(name)) return null;
  const p: LockedPackage = { name, version, resolved };
  if (integrity !== undefined) p.integrity = integrity;
  return p;
}

/** `name@range` -> name; an alias `alias@npm:real@range` installs `real`. */
function specName(spec: string): string | null {
  const at = spec.indexOf('@', 1);
  if (at === -1) return null;
  const range = spec.slice(at + 1);
  if (range.startsWith('npm:')) return specName(range.slice(4)) ?? (range.length > 4 ? range.slice(4) : null);
  return spec.slice(0, at);
}

/** Splits `a@1, "b@^2", "@s/c@~3"` on the commas outside quotes. */
function splitKeys(keys: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < keys.length; i++) {
    const c = keys[i]!;
    if (quoted && c === '\\') {
      cur += c + (keys[++i] ?? '');
    } else if (c === '"') {
      quoted = !quoted;
      cur += c;
    } else if (c === ',' && !quoted) {
      out.push(unquote(cur.trim()));
      cur = '';
    } else {
      cur += c;
    }
  }
  if (cur.trim() !== '') out.push(unquote(cur.trim()));
  return out;
}

function unquote(s: string): string {
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) {
    try {
      return JSON.parse(s) as string;
    } catch {
      return s.slice(1, -1);
    }
  }
  return s;
}
