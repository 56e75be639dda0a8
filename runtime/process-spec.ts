import type { AppRecord, Release } from '../core/store.js';
import type { ProcessSpec } from './containers.js';

/** What of an app record a process's spec depends on. */
export type SpecApp = Pick<AppRecord, 'name' | 'config' | 'limits'>;
/** What of a release a process's spec depends on. */
export type SpecRelease = Pick<Release, 'version' | 'image' | 'processTypes' | 'defaultConfig' | 'config'>;

/** The environment a release's processes get: buildpack defaults, then the user's config. Pure. */
export function releaseEnv(release: Pick<Release, 'defaultConfig' | 'config'>, app: Pick<AppRecord, 'config'>): Record<string, string> {
  return { ...release.defaultConfig, ...(release.config ?? app.config) };
}

/**
 * The one place a process's start spec comes from: a deploy, a scale, `ps:start` and the
 * recovery of a restarted daemon all start `<app>.<type>.<index>` from this, so none of them can
 * drop the app's limits or environment (issue 10: recovered containers once lost their limits).
 * Pure.
 */
export function processSpec(app: SpecApp, release: SpecRelease, type: string, index: number, extraLabels?: Record<string, string>): ProcessSpec {
  return {
    app: app.name,
    type,
    index,
    image: release.image,
    release: release.version,
    command: release.processTypes[type] ?? '',
    env: releaseEnv(release, app),
    web: type === 'web',
    ...(app.limits?.memory ? { memory: app.limits.memory } : {}),
    ...(app.limits?.cpus ? { cpus: app.limits.cpus } : {}),
    ...(extraLabels ? { extraLabels } : {}),
  };
}
