import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateHostKey, loadHostKey } from '../../receiver/ssh-server.js';

const { utils } = ssh2;

describe('SSH host key', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-hostkey-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('skips generated pairs ssh2 cannot parse back', () => {
    const good = utils.generateKeyPairSync('ed25519');
    const bad = { private: '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n', public: good.public };
    const pairs = [bad, bad, good];
    let calls = 0;
    expect(generateHostKey(() => pairs[calls++]!)).toBe(good.private);
    expect(calls).toBe(3);
  });

  it('every one of 2000 generated host keys parses (one in 256 did not, straight from ssh2)', () => {
    for (let i = 0; i < 2000; i++) expect(utils.parseKey(generateHostKey())).not.toBeInstanceOf(Error);
  });

  it('keeps a good stored key and replaces one that cannot be parsed', async () => {
    const file = path.join(dir, 'host_key');
    const first = await loadHostKey(file);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await loadHostKey(file)).equals(first)).toBe(true);
    await fs.writeFile(file, 'not a key\n');
    const replaced = await loadHostKey(file);
    expect(utils.parseKey(replaced)).not.toBeInstanceOf(Error);
    expect(await fs.readFile(file, 'utf8')).toBe(replaced.toString());
  });
});
