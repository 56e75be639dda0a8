import { afterAll, beforeAll, expect, it } from 'vitest';
import { startProcess, stopAndRemove } from '../runtime/containers.js';
import { webReady } from '../runtime/formation.js';
import type { HealthCheck } from '../core/store.js';
import { WEB_COMMAND, buildTestImage, cleanupApp, docker, randomApp } from '../test/runtime/helpers.js';

/**
 * How long a new web container waits before it may be routed (runtime/containers.ts#waitHealthy),
 * from its start: with the default settle (`healthSettleMs` 1500), the bench's settle (500), and
 * with an app.json startup check instead of a settle. Same run, same image, ROUNDS each, median.
 * Run: node_modules/.bin/vitest run --config bench/vitest.config.ts bench/health-wait.bench.ts
 */
const ROUNDS = 5;
const app = randomApp();
let image = '';
let index = 0;
const check: HealthCheck[] = [{ path: '/index.html', content: 'health-wait' }];

async function timeReady(o: { settleMs: number; healthchecks?: HealthCheck[] }): Promise<number> {
  const started = await startProcess(docker, { app, type: 'web', index: ++index, image, release: 1, command: WEB_COMMAND, env: {}, web: true, extraLabels: { 'slipway.test': '1' } });
  try {
    const t0 = performance.now();
    await webReady({ docker, settleMs: o.settleMs, healthTimeoutMs: 30_000, progress: () => {}, ...(o.healthchecks ? { healthchecks: o.healthchecks } : {}) }, [started]);
    return performance.now() - t0;
  } finally {
    await stopAndRemove(docker, started.id, 0);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

beforeAll(async () => {
  image = await buildTestImage(app, 1, 'health-wait');
}, 300_000);
afterAll(() => cleanupApp(app), 120_000);

it('measures the wait before a new web container is routed', async () => {
  const runs: Record<string, number[]> = { settle1500: [], settle500: [], checks: [] };
  // Interleaved, so a busy moment of the machine hits every kind alike.
  for (let i = 0; i < ROUNDS; i++) {
    runs.settle1500!.push(await timeReady({ settleMs: 1500 }));
    runs.settle500!.push(await timeReady({ settleMs: 500 }));
    runs.checks!.push(await timeReady({ settleMs: 1500, healthchecks: check }));
  }
  const m = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  const s = (k: string) => `${(m[k]! / 1000).toFixed(2)} s`;
  console.log(
    [
      '',
      `start -> routable (median of ${ROUNDS})`,
      `  no app.json checks, healthSettleMs 1500 (default) ${s('settle1500')}`,
      `  no app.json checks, healthSettleMs 500            ${s('settle500')}`,
      `  an app.json startup check (settle not used)       ${s('checks')}   ratio to default ${(m.checks! / m.settle1500!).toFixed(2)}x`,
      '',
    ].join('\n'),
  );
  expect(Object.values(m).every((v) => v > 0)).toBe(true);
});
