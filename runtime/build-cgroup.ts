import fs from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';

/**
 * A pids limit for a Dockerfile build. The engine's build API takes memory limits but no pids
 * limit, so the build's step containers are put under a cgroup parent made here with `pids.max`
 * set: the kernel counts every process of every step against it. That needs the engine's
 * `cgroupfs` cgroup driver (with the `systemd` driver a parent must be a systemd slice, which
 * only systemd can make); elsewhere the build runs without a pids limit and says so
 * (docs/buildpacks.md, "Apps with a Dockerfile").
 */
export interface BuildCgroup {
  /** The `cgroupparent` build option, or undefined when no limit could be set. */
  parent: string | undefined;
  /** Why no limit applies, for the build log; null when it does. */
  note: string | null;
  /** Removes the cgroup folders (the engine made one per controller under the parent). */
  release(): Promise<void>;
}

export interface BuildCgroupOptions {
  docker: Dockerode;
  /** Folder name of the parent: `slipway-build-<id>`. */
  name: string;
  pidsLimit: number;
  /** Where cgroup file systems are mounted (tests may point elsewhere). */
  root?: string;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,80}$/;

export async function createBuildCgroup(o: BuildCgroupOptions): Promise<BuildCgroup> {
  const root = o.root ?? '/sys/fs/cgroup';
  if (!NAME.test(o.name)) throw new Error(`invalid cgroup name ${JSON.stringify(o.name)}`);
  const none = (note: string): BuildCgroup => ({ parent: undefined, note, release: async () => undefined });
  const info = (await o.docker.info()) as { CgroupDriver?: string; CgroupVersion?: string };
  if (info.CgroupDriver !== 'cgroupfs') {
    return none(`no pids limit for Dockerfile builds: the Docker Engine uses the ${info.CgroupDriver ?? 'unknown'} cgroup driver (needs cgroupfs)`);
  }
  const v2 = info.CgroupVersion === '2';
  const dir = v2 ? path.join(root, o.name) : path.join(root, 'pids', o.name);
  // On cgroup v1 the engine makes the parent in every controller; on v2 there is one tree.
  const release = async () => {
    const dirs = v2 ? [dir] : (await fs.readdir(root).catch(() => [] as string[])).map((c) => path.join(root, c, o.name));
    // A step container cut short by a timeout may still be leaving: its cgroup keeps the parent busy.
    for (const d of dirs) {
      for (let attempt = 0; attempt < 10; attempt++) {
        const code = await fs.rmdir(d).then(() => null, (err: NodeJS.ErrnoException) => err.code);
        if (code !== 'EBUSY') break;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  try {
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'pids.max'), `${o.pidsLimit}\n`);
  } catch (err) {
    await release();
    return none(`no pids limit for Dockerfile builds: cannot set ${path.join(dir, 'pids.max')} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return { parent: `/${o.name}`, note: null, release };
}
