import { run, type TestPlatform } from './platform.js';

export type ServiceRef = readonly ['postgres' | 'redis', string];

/**
 * Ends a test of services: unlinks each service from each app, destroys the services, stops the
 * platform, then removes by exact name whatever a failed step left (containers, networks).
 */
export async function stopWithServices(platform: TestPlatform | undefined, services: readonly ServiceRef[], apps: readonly string[]): Promise<void> {
  for (const [kind, name] of services) {
    for (const app of apps) await platform?.cli([`${kind}:unlink`, name, app]);
    await platform?.cli([`${kind}:destroy`, name, '--force']);
  }
  await platform?.stop();
  for (const [kind, name] of services) {
    await run('docker', ['rm', '-f', `slipway.${kind}.${name}`]);
    await run('docker', ['network', 'rm', `slipway-svc-${kind}-${name}`, ...apps.map((app) => `slipway-link-${kind}-${name}-${app}`)]);
  }
}
