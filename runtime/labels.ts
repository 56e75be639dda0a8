/**
 * The label that says which Slipway instance (which SLIPWAY_HOME) made an engine object. Several
 * instances may share one Docker engine: each one lists, follows, stops and removes only what
 * carries its own id (docs/security.md, "One engine, several instances").
 */
export const INSTANCE_LABEL = 'slipway.instance';

/** The labels every container, image, network or volume Slipway creates carries. */
export function instanceLabels(instanceId: string): Record<string, string> {
  return { [INSTANCE_LABEL]: instanceId };
}

/** The `label` filter value that selects this instance's objects in an engine query. */
export function instanceFilter(instanceId: string): string {
  return `${INSTANCE_LABEL}=${instanceId}`;
}

/** Whether an object's labels say this instance made it. */
export function ownedBy(labels: Record<string, string> | null | undefined, instanceId: string): boolean {
  return labels?.[INSTANCE_LABEL] === instanceId;
}

/** Build containers carry their app in this label, so a restarted daemon finds its own orphans. */
export const BUILD_APP_LABEL = 'slipway.build-app';
