import { SlipwayError } from '../../core/errors.js';

/**
 * The mirror's Python side: wheels and sdists lie flat in `mirror/pypi/<filename>`, which is
 * what `pip install --no-index --find-links /mirror/pypi` reads. Name and version come from
 * the filename, as pip takes them. Pure: no I/O.
 */

/** PEP 503: runs of `-`, `_` and `.` are one `-`, case does not matter. */
export function normalizePypiName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/**
 * A version in a form that compares equal where pip's `==` would: lower case, no leading `v`,
 * trailing `.0` release segments dropped (`1.0` == `1.0.0`).
 */
export function normalizePypiVersion(version: string): string {
  const v = version.trim().toLowerCase().replace(/^v/, '');
  const m = /^(\d+(?:\.\d+)*)(.*)$/.exec(v);
  if (!m) return v;
  const release = m[1]!.split('.').map((n) => String(Number(n)));
  while (release.length > 1 && release.at(-1) === '0') release.pop();
  return release.join('.') + m[2]!;
}

// A file name a mirror may hold: no path separators, no leading dot, nothing a shell or pip treats specially.
const SAFE_FILE = /^[A-Za-z0-9][A-Za-z0-9._+!-]*$/;
const NAME_PART = /^[A-Za-z0-9]([A-Za-z0-9._]*[A-Za-z0-9])?$/;
const VERSION_PART = /^[A-Za-z0-9][A-Za-z0-9.+!_]*$/;

export interface PypiFile {
  /** PEP 503 normalized. */
  name: string;
  version: string;
  kind: 'wheel' | 'sdist';
}

/**
 * Name and version of a wheel (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`,
 * PEP 427) or an sdist (`{name}-{version}.tar.gz` or `.zip`), or null when the filename is
 * neither, or could escape the mirror folder.
 */
export function parsePypiFilename(filename: string): PypiFile | null {
  if (filename.length > 255 || !SAFE_FILE.test(filename)) return null;
  if (filename.endsWith('.whl')) {
    const parts = filename.slice(0, -'.whl'.length).split('-');
    if (parts.length !== 5 && parts.length !== 6) return null;
    const [name, version] = parts as [string, string];
    if (!NAME_PART.test(name) || !VERSION_PART.test(version) || parts.some((p) => p === '')) return null;
    if (parts.length === 6 && !/^\d/.test(parts[2]!)) return null; // a build tag starts with a digit
    return { name: normalizePypiName(name), version, kind: 'wheel' };
  }
  const ext = ['.tar.gz', '.zip'].find((e) => filename.endsWith(e));
  if (ext === undefined) return null;
  const stem = filename.slice(0, -ext.length);
  // Older sdists keep dashes in the name; the version is what follows the last one.
  const at = stem.lastIndexOf('-');
  if (at <= 0) return null;
  const name = stem.slice(0, at);
  const version = stem.slice(at + 1);
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(name) || !VERSION_PART.test(version) || !/^\d/.test(version)) return null;
  return { name: normalizePypiName(name), version, kind: 'sdist' };
}

export interface Requirement {
  name: string;
  version: string;
  line: number;
}

/**
 * The pinned requirements of a requirements.txt. Builds are offline and reproducible, so every
 * line must pin one version (`name==version`, as `pip freeze` writes); anything looser, and
 * includes (`-r`, `-c`) or options that point pip elsewhere, are refused with the line number.
 * Extras, environment markers and `--hash` options are accepted and ignored here.
 */
export function parseRequirements(text: string): Requirement[] {
  const out: Requirement[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!;
    // Backslash continuations join lines (pip does this before anything else).
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!;
    line = line.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') continue;
    const where = `requirements.txt line ${lineNo}`;
    if (/^(-r|-c|--requirement|--constraint)\b/.test(line)) {
      throw new SlipwayError('E_BUILD', `${where}: includes (-r, -c) are not supported: list every package in requirements.txt itself (pip freeze > requirements.txt)`);
    }
    if (line.startsWith('-')) {
      throw new SlipwayError('E_BUILD', `${where}: pip options (${line.split(/\s/)[0]}) are not supported: builds install only from the mirror; remove the option`);
    }
    const spec = line.replace(/\s+--hash[=\s]\S+/g, '').split(';')[0]!.trim();
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)$/.exec(spec);
    if (!m || m[3]!.includes('*')) {
      throw new SlipwayError('E_BUILD', `${where}: "${spec.slice(0, 80)}" is not pinned: builds are offline, so pin each package as name==version (pip freeze writes that)`);
    }
    out.push({ name: normalizePypiName(m[1]!), version: m[3]!, line: lineNo });
  }
  return out;
}

/** Requirements that no file in the mirror satisfies (by normalized name and version). Pure. */
export function missingRequirements(requirements: Requirement[], mirrorFiles: string[]): Requirement[] {
  const have = new Set<string>();
  for (const f of mirrorFiles) {
    const p = parsePypiFilename(f);
    if (p) have.add(`${p.name}==${normalizePypiVersion(p.version)}`);
  }
  return requirements.filter((r) => !have.has(`${r.name}==${normalizePypiVersion(r.version)}`));
}
