#!/usr/bin/env node
// Create-to-ready time of each service kind (issue 13: "a benchmark reports create-to-ready
// time for each service"): `<kind>:create` until the service passes its health check, which is
// when the command returns. The first create of a kind includes building its image when this
// engine lacks it (said in the output); the second is always the service alone. Starts a
// throw-away `slipway server` (bench/harness.mjs) and destroys every service it made.
// Usage: node bench/services.mjs
// Needs Docker and the stack image; the service images are built if missing (apt sources).
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { cli, start, stop } from './harness.mjs';

const suffix = crypto.randomBytes(3).toString('hex');
const made = [];

const docker = (args) => new Promise((resolve) => spawn('docker', args, { stdio: 'ignore' }).on('close', resolve).on('error', resolve));

async function timedCreate(kind, name) {
  made.push([kind, name]);
  const t0 = Date.now();
  const out = await cli(`${kind}:create`, name);
  const ms = Date.now() - t0;
  const info = JSON.parse(await cli(`${kind}:info`, name, '--json'));
  if (info.health !== 'healthy') throw new Error(`${kind} ${name} is ${info.status} (${info.health}) after create`);
  return { ms, built: / image \S+ ready/.test(out) };
}

try {
  await start();
  for (const kind of ['postgres', 'redis']) {
    const first = await timedCreate(kind, `bench-${kind}-${suffix}-1`);
    const second = await timedCreate(kind, `bench-${kind}-${suffix}-2`);
    const built = first.built ? ` (first create built the image: ${(first.ms / 1000).toFixed(1)} s)` : ` (first create: ${(first.ms / 1000).toFixed(1)} s)`;
    console.log(`${kind}: create to ready in ${(second.ms / 1000).toFixed(1)} s${built}`);
  }
} finally {
  for (const [kind, name] of made) await cli(`${kind}:destroy`, name, '--force').catch((err) => console.error(err.message));
  await stop();
  // Whatever a failed step left behind, by the exact names this run made.
  for (const [kind, name] of made) {
    await docker(['rm', '-f', `slipway.${kind}.${name}`]);
    await docker(['network', 'rm', `slipway-svc-${kind}-${name}`]);
  }
}
