import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createDocker } from '../../runtime/host-setup.js';
import { createLogger } from '../../core/log.js';
import type { Release } from '../../core/store.js';
import { removeApp } from '../../runtime/containers.js';
import { buildReleaseImage, removeAppImages, removeUnusedRuntimeImages } from '../../runtime/images.js';
import { removeAppNetwork } from '../../runtime/networks.js';
import { releaseLayers } from '../../buildpacks/builtins.js';

export const docker = createDocker();
export const logger = createLogger('silent');
export const STACK = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
export const TEST_LABELS = { 'slipway.test': '1' };

/** A unique app name per test run, so nothing collides with real apps or other runs. */
export const randomApp = (): string => `t-${randomBytes(5).toString('hex')}`;

/** The web command of the test app: proves `.profile.d` ran and `$PORT` expanded, then serves /app. */
export const WEB_COMMAND =
  'echo "greeting=$GREETING port=$PORT dyno=$DYNO home=$HOME"; exec python3 -m http.server "$PORT" --bind 0.0.0.0';

/** A small app dir: index.html with `content`, a .profile.d script, an executable and a symlink. */
export async function makeAppDir(content: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-app-'));
  await fs.writeFile(path.join(dir, 'index.html'), content);
  await fs.mkdir(path.join(dir, '.profile.d'));
  await fs.writeFile(path.join(dir, '.profile.d', 'greet.sh'), 'export GREETING=hello-from-profile\n');
  await fs.mkdir(path.join(dir, 'bin'));
  await fs.writeFile(path.join(dir, 'bin', 'hello'), '#!/bin/sh\necho hello-bin\n', { mode: 0o755 });
  await fs.symlink('index.html', path.join(dir, 'link.html'));
  await fs.mkdir(path.join(dir, '.git'));
  await fs.writeFile(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  return dir;
}

export async function buildTestImage(app: string, version: number, content: string): Promise<string> {
  const appDir = await makeAppDir(content);
  try {
    return await buildReleaseImage({
      docker,
      stackImage: STACK,
      appDir,
      app,
      version,
      labels: TEST_LABELS, layers: releaseLayers(),
      onProgress: () => {},
    });
  } finally {
    await fs.rm(appDir, { recursive: true, force: true });
  }
}

/** Removes exactly what a test app created: its containers, its network, then its images. */
export async function cleanupApp(app: string): Promise<void> {
  await removeApp(docker, app, 0);
  await removeAppNetwork(docker, app);
  await removeAppImages(docker, app);
  await removeUnusedRuntimeImages(docker);
}

export function httpGet(hostPort: string, urlPath = '/'): Promise<{ status: number; body: string }> {
  const [host, port] = hostPort.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port: Number(port), path: urlPath, agent: false, timeout: 3000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A release record of `image` running WEB_COMMAND as web, as the store keeps it. */
export const webRelease = (version: number, image: string): Release => ({
  version,
  image,
  buildId: null,
  commit: null,
  configHash: '',
  processTypes: { web: WEB_COMMAND },
  defaultConfig: {},
  createdAt: new Date().toISOString(),
  by: 'test',
  description: `v${version}`,
  config: {},
});
