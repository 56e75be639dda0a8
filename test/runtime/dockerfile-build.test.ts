import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { followToEnd } from '../../runtime/docker-progress.js';
import { buildDockerfileImage, buildStepObjects } from '../../runtime/dockerfile.js';
import { rejectsOneLine } from '../support/errors.js';
import { STACK, TEST_LABELS, cleanupApp, docker, randomApp } from './helpers.js';

// Dockerfile builds on the real engine: offline, limited, checked before they start, and a
// failed one leaves nothing behind (issue 9, High 4 and Low).

const apps: string[] = [];
const dirs: string[] = [];
const extraImages: string[] = [];

afterAll(async () => {
  for (const app of apps) await cleanupApp(app);
  for (const image of extraImages) await docker.getImage(image).remove({ force: true }).catch(() => undefined);
  for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
});

async function build(dockerfile: string, o: { app?: string; memory?: string; pidsLimit?: number } = {}) {
  const app = o.app ?? randomApp();
  if (!apps.includes(app)) apps.push(app);
  const appDir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-dockerfile-'));
  dirs.push(appDir);
  await fs.writeFile(path.join(appDir, 'Dockerfile'), dockerfile);
  const lines: string[] = [];
  const run = buildDockerfileImage({
    docker,
    appDir,
    app,
    version: 1,
    config: {},
    labels: TEST_LABELS,
    timeoutSeconds: 240,
    memory: o.memory ?? '256m',
    pidsLimit: o.pidsLimit ?? 512,
    say: (line) => lines.push(line),
  });
  return { app, lines, run };
}

/** Images labelled with the app: what a build would have left had it started. */
const appImages = async (app: string) => docker.listImages({ all: true, filters: { label: [`slipway.app=${app}`] } });
const unique = () => randomBytes(6).toString('hex');
const buildDirs = async () => (await fs.readdir('/sys/fs/cgroup/pids').catch(() => [] as string[])).filter((d) => d.startsWith('slipway-build-'));

describe('Dockerfile builds on the engine', () => {
  it('runs RUN steps with only a loopback interface, the memory limit and stages by index', async () => {
    const { lines, run } = await build(
      [
        `FROM ${STACK} AS base`,
        `RUN echo ${unique()} > /hi`,
        `FROM ${STACK}`,
        'COPY --from=0 /hi /hi',
        'RUN echo "interfaces: $(ls /sys/class/net | tr "\\n" " ")"',
        'RUN echo "memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"',
        'CMD ["sleep", "1"]',
        '',
      ].join('\n'),
      { memory: '256m' },
    );
    const { image } = await run;
    expect(image).toMatch(/^slipway\/t-[0-9a-f]+:v1$/);
    // The first stage's step image is a dead end once the build is done: it is gone.
    const firstStage = buildStepObjects(lines.map((l) => l.replace(/^ {7}/, ''))).images[1]!;
    await expect(docker.getImage(firstStage).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(lines.join('\n')).toMatch(/interfaces: lo$/m);
    expect(lines.join('\n')).toContain(`memory limit: ${256 * 1024 * 1024}`);
  });

  it('fails a RUN step that tries to reach the network', async () => {
    const { lines, run } = await build(`FROM ${STACK}\nRUN echo ${unique()} && python3 -c "import socket; socket.create_connection(('1.1.1.1', 53), 3)"\n`);
    const err = await rejectsOneLine(run);
    expect(err.code).toBe('E_BUILD');
    expect(lines.join('\n')).toMatch(/Network is unreachable|OSError/);
  });

  it('applies buildPidsLimit to the steps and removes its cgroup afterwards', async () => {
    const before = await buildDirs();
    const { lines, run } = await build(`FROM ${STACK}\nRUN echo ${unique()}; for i in $(seq 200); do sleep 3 & done; wait\n`, { pidsLimit: 64 });
    await rejectsOneLine(run);
    expect(lines.join('\n')).toMatch(/fork|Resource temporarily unavailable/i);
    expect(await buildDirs()).toEqual(before);
  });

  it('leaves no step images or containers behind when a build fails', async () => {
    const { app, lines, run } = await build(`FROM ${STACK}\nRUN echo ${unique()} > /a\nRUN echo two > /b\nRUN exit 3\n`);
    const err = await rejectsOneLine(run);
    expect(err.message).toMatch(/returned a non-zero code: 3/);
    const made = buildStepObjects(lines.map((l) => l.replace(/^ {7}/, '')));
    const stack = (await docker.getImage(STACK).inspect()).Id.replace('sha256:', '').slice(0, 12);
    const stepImages = made.images.filter((id) => id !== stack);
    // Two steps committed an image before the third failed; both must be gone.
    expect(stepImages).toHaveLength(2);
    for (const id of stepImages) await expect(docker.getImage(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(made.containers.length).toBeGreaterThanOrEqual(3);
    for (const id of made.containers) await expect(docker.getContainer(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(await docker.getImage(STACK).inspect()).toBeTruthy();
    expect(await appImages(app)).toEqual([]);
  });
});

describe('Dockerfile builds refused before the engine sees them', () => {
  // Each attack is refused with one line naming the Dockerfile line, before any build starts:
  // no step ran, no image was made.
  async function refusedBeforeBuild(dockerfile: string, pattern: RegExp, o: { app?: string } = {}) {
    const { app, lines, run } = await build(dockerfile, o);
    const err = await rejectsOneLine(run);
    expect(err.code).toBe('E_BUILD');
    expect(err.message).toMatch(pattern);
    expect(lines.filter((l) => /Step \d/.test(l))).toEqual([]);
    expect(await appImages(app)).toEqual([]);
  }

  it('COPY --from=<registry>/<image> (the engine would pull it)', async () => {
    await refusedBeforeBuild(`FROM ${STACK}\nCOPY --from=registry.invalid/evil/image:1 /etc/passwd /x\n`, /^Dockerfile line 2: COPY --from registry\.invalid\/evil\/image:1: not on this machine, and builds cannot pull: .*docker load/);
  });

  it('ADD http://... (the engine fetches it itself)', async () => {
    await refusedBeforeBuild(`FROM ${STACK}\nADD http://127.0.0.1:9/x /x\n`, /^Dockerfile line 2: ADD from a URL/);
  });

  it('a FROM hidden behind an "# escape=" directive', async () => {
    await refusedBeforeBuild(`# escape=\`\nFROM ${STACK}\nLABEL a=b \\\nFROM registry.invalid/evil/image\n`, /^Dockerfile line 4: FROM registry\.invalid\/evil\/image: not on this machine/);
    await refusedBeforeBuild(`# syntax=registry.invalid/frontend\n# escape=\`\nFROM ${STACK}\n`, /^Dockerfile line 1: the "# syntax=" directive/);
  });

  it('an image ID prefix (the engine would take any untagged image, other apps\' steps too)', async () => {
    const id = (await docker.getImage(STACK).inspect()).Id.replace('sha256:', '');
    await refusedBeforeBuild(`FROM ${id.slice(0, 6)}\n`, /^Dockerfile line 1: FROM [0-9a-f]{6}: name the image by repository and tag, not by image ID$/);
    await refusedBeforeBuild(`FROM ${STACK}\nCOPY --from=${id.slice(0, 12)} / /x\n`, /^Dockerfile line 2: COPY --from [0-9a-f]{12}: name the image by repository/);
  });

  it('a heredoc', async () => {
    await refusedBeforeBuild(`FROM ${STACK}\nRUN <<EOF\necho hi\nEOF\n`, /^Dockerfile line 2: RUN with a heredoc/);
  });

  it("another app's image, and an image with ONBUILD triggers", async () => {
    const { app: owner, run } = await build(`FROM ${STACK}\nRUN echo ${unique()} > /secret\nCMD ["true"]\n`);
    await run;
    await refusedBeforeBuild(`FROM slipway/${owner}:v1\n`, /^Dockerfile line 1: FROM slipway\/t-[0-9a-f]+:v1: that image belongs to another app/);
    // Its own images stay usable to it.
    const own = await build(`FROM slipway/${owner}:v1\nCMD ["true"]\n`, { app: owner });
    await expect(own.run.then(() => 'built', (e: Error) => e.message)).resolves.toBe('built');

    const tag = `slipway-test-onbuild:${unique()}`;
    extraImages.push(tag);
    const pack = tar.pack();
    pack.entry({ name: 'Dockerfile' }, `FROM ${STACK}\nONBUILD RUN true\n`);
    pack.finalize();
    const stream: NodeJS.ReadableStream = await docker.buildImage(pack as unknown as NodeJS.ReadableStream, { t: tag, version: '1', networkmode: 'none', pull: false, rm: true, forcerm: true } as Parameters<typeof docker.buildImage>[1]);
    await followToEnd(docker, stream, () => undefined);
    await refusedBeforeBuild(`FROM ${tag}\n`, /^Dockerfile line 1: FROM slipway-test-onbuild:[0-9a-f]+: that image has ONBUILD triggers/);
  });
});
