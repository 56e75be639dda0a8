import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = path.resolve('scripts/check-layers.mjs');
const check = (root?: string) => spawnSync(process.execPath, [script, ...(root ? ['--root', root] : [])], { encoding: 'utf8' });

describe('dependency direction (docs/architecture.md)', () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

  it('holds for this checkout', () => {
    const r = check();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('names an upward import, type-only ones included', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-layers-'));
    dirs.push(root);
    await fs.mkdir(path.join(root, 'core'));
    await fs.mkdir(path.join(root, 'runtime'));
    await fs.writeFile(path.join(root, 'runtime', 'a.ts'), "export const a = 1;\n");
    await fs.writeFile(path.join(root, 'core', 'b.ts'), "import fs from 'node:fs';\n\nimport type { A } from '../runtime/a.js';\n");
    const r = check(root);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe("core/b.ts:3: core/ may not import runtime/ (../runtime/a.js); see docs/architecture.md");
  });
});
