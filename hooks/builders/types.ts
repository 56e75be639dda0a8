import type { AppRecord } from '../../core/store.js';

/**
 * The builder seam (docs/architecture.md, "Builders"): a builder turns a pushed tree into a
 * release image and its process types. `detects` says whether, and how strongly, it claims a
 * tree; `chooseBuilder` (choose.ts) is the one precedence over all builders.
 */
export type BuilderName = 'buildpacks' | 'dockerfile';

/**
 * How a builder claims a tree, strongest first: `pinned` (the app or the repository names what
 * builds it), `present` (a build file of this builder is there), `fallback` (it can always try).
 */
export const CLAIMS = ['pinned', 'present', 'fallback'] as const;
export type Claim = (typeof CLAIMS)[number];

/** What `slipway buildpacks <app>` calls the choice (docs/buildpacks.md, "Choosing buildpacks"). */
export type ChoiceMode = 'buildpacks:set' | '.buildpacks' | 'dockerfile' | 'detect';

export interface Detection {
  claim: Claim;
  mode: ChoiceMode;
  /** The pinned buildpack entries (names or URLs), in order; empty otherwise. */
  entries: string[];
}

/**
 * The files of an app the precedence reads: a pushed tree on disk at deploy time, a commit of the
 * app's repository for `slipway buildpacks <app>`. Only regular files count.
 */
export interface AppSource {
  /** The file's text, or null when it is not there (or not a regular file). */
  readFile(name: string, maxBytes: number): Promise<string | null>;
  isFile(name: string): Promise<boolean>;
}

/** The part of a builder the precedence needs: no engine, no state. */
export interface BuilderDetector {
  readonly name: BuilderName;
  /** Null when this builder does not claim the tree; `appPin` is the app's `buildpacks:set`. */
  detects(source: AppSource, appPin: string[]): Promise<Detection | null>;
}

/** What a deploy knows when it hands the tree to the chosen builder. */
export interface BuildContext {
  app: string;
  rev: string;
  buildId: string;
  version: number;
  /** The extracted tree; the builder may change it (the build happens there). */
  appDir: string;
  record: AppRecord;
  /** Push output and build log, verbatim (lines end with '\n'). */
  say: (text: string) => void;
  /** Ends a timed phase of the push (hooks/phase-clock.ts): `detect` and `compile` are the builder's. */
  phase: (phase: 'detect' | 'compile') => void;
  signal: AbortSignal;
  /** Labels of the release image. */
  imageLabels: Record<string, string>;
  /** Why this builder was chosen. */
  detection: Detection;
}

/** A built app: everything the deploy needs afterwards. */
export interface Built {
  /** Recorded with the build: the buildpacks that ran, or `['dockerfile']`. */
  buildpacks: string[];
  processTypes: Record<string, string>;
  /** Defaults for the app's config (a buildpack's `bin/release` config_vars). */
  configVars: Record<string, string>;
  /** The release image, `slipway/<app>:v<N>`. */
  image: string;
}

export interface Builder extends BuilderDetector {
  build(ctx: BuildContext): Promise<Built>;
}
