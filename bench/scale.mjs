#!/usr/bin/env node
// `ps:scale web=1 -> 10` until every web process is healthy and routed, on each scheduler
// (issue 10 goals: <= 10 s on docker-local, <= 20 s on docker-swarm), then a swarm redeploy
// (`ps:restart`) under load, counting failed requests (goal: 0), for a client that never resends
// and for one that resends as browsers do. Starts a throw-away `slipway
// server` on free loopback ports and deploys fixtures/apps/node-ops.
// Usage: node bench/scale.mjs [concurrency=8]
// Needs Docker, the stack image and a seeded mirror (SLIPWAY_TEST_MIRROR or .cache/test-mirror).
import { app, cli, deploy, load, routedCount, start, stop } from './harness.mjs';

const concurrency = Number(process.argv[2] ?? 8);

try {
  await start();
  await deploy();
  for (const scheduler of ['docker-local', 'docker-swarm']) {
    const m0 = Date.now();
    await cli('scheduler:set', app, scheduler);
    console.log(`${scheduler}: scheduler:set took ${((Date.now() - m0) / 1000).toFixed(1)} s`);
    await cli('ps:scale', app, 'web=1');
    const s0 = Date.now();
    await cli('ps:scale', app, 'web=10');
    const ms = Date.now() - s0;
    console.log(`${scheduler}: ps:scale web=1 -> 10 in ${(ms / 1000).toFixed(1)} s until healthy and routed (${await routedCount()} upstreams routed)`);
  }
  // Twice: a client that never resends, and one that resends what failed unanswered on a reused
  // connection, as browsers do (nginx reloads close idle kept connections: docs/router.md).
  for (const resend of [false, true]) {
    const during = await load(cli('ps:restart', app), concurrency, { resend });
    const why = during.statuses.size ? ` (${[...during.statuses].map(([k, v]) => `${k}: ${v}`).join(', ')})` : '';
    console.log(
      `docker-swarm: ps:restart of 10 replicas under load, ${resend ? `resending client (${during.resent} resent)` : 'client that never resends'}: sent ${during.sent}, failed ${during.failed}${why}, p99 ${during.p99.toFixed(1)} ms`,
    );
  }
} finally {
  await stop();
}
