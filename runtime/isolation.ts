import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';

/**
 * How every app container is confined (web and worker processes, release-phase and other
 * one-off runs). Every place that builds a container spec takes its HostConfig hardening from
 * `hardenedHostConfig`, so no start path can forget a part of it. README "What a Dockerfile app
 * may do" and docs/security.md describe the result.
 */

/** Processes (threads included) one container may have: bounds a fork bomb to its own container. */
export const APP_PIDS_LIMIT = 1024;

/**
 * The only capabilities a container whose image runs as root gets back (all are dropped first):
 * enough to chown/chmod its own files, switch to another user (gosu, su-exec), bind ports below
 * 1024 and signal its own processes. Nothing that touches the kernel, the network stack or
 * devices (no NET_RAW, SYS_ADMIN, MKNOD, SYS_CHROOT, AUDIT_WRITE, SETFCAP, SETPCAP, FSETID).
 * An image that runs as a non-root user (every buildpack image: uid 1000) gets none.
 */
export const ROOT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID', 'NET_BIND_SERVICE', 'KILL'] as const;

/** Image label set at release time from app.json `"slipway": {"readonly": true}`. */
export const READONLY_LABEL = 'slipway.readonly';

/** The writable scratch a read-only container keeps; counted in the container's memory limit. */
export const READONLY_TMPFS = { '/tmp': 'rw,nosuid,nodev,size=256m,mode=1777' } as const;

/** What the image says about how its processes must be confined. */
export interface ImageIsolation {
  /** The image's USER is root (or unset): it gets `ROOT_CAPABILITIES` back. */
  runsAsRoot: boolean;
  /** app.json asked for a read-only root filesystem. */
  readonly: boolean;
}

export interface HostIsolation extends ImageIsolation {
  /** The app's own network (runtime/networks.ts). */
  network: string;
  /** The networks of the services linked to the app (runtime/service-containers.ts). */
  links?: readonly string[];
  memory?: number;
  nanoCpus?: number;
}

/** USER `""`, `root`, `0`, `root:x` or `0:x` runs as uid 0; a named user is trusted to be what it says. Pure. */
export function userIsRoot(user: string | undefined | null): boolean {
  const who = (user ?? '').trim().split(':')[0]!;
  return who === '' || who === 'root' || who === '0';
}

/** Reads the confinement inputs from an image's config (USER and the readonly label). Pure. */
export function imageIsolation(config: { User?: string | null; Labels?: Record<string, string> | null } | undefined): ImageIsolation {
  return { runsAsRoot: userIsRoot(config?.User), readonly: config?.Labels?.[READONLY_LABEL] === 'true' };
}

/** The labels a release image carries for the settings above (always explicit, so an image's own LABEL cannot decide). */
export function isolationLabels(settings: { readonly: boolean }): Record<string, string> {
  return { [READONLY_LABEL]: String(settings.readonly) };
}

/** Inspects the release image once per container start: its USER and labels decide the confinement. */
export async function inspectImageIsolation(docker: Dockerode, image: string): Promise<ImageIsolation> {
  try {
    const info = await docker.getImage(image).inspect();
    return imageIsolation(info.Config);
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    const hint = status === 404 ? ': the release image is gone; deploy again or roll back to a release that still has one' : '';
    throw new SlipwayError('E_DOCKER', `inspecting image ${image} failed: ${(err as Error).message.split('\n')[0]}${hint}`, { cause: err });
  }
}

/**
 * The HostConfig part that confines an app container. Pure: the spec builders merge it into
 * their own HostConfig (port bindings, restart policy, logs).
 */
export function hardenedHostConfig(o: HostIsolation): Dockerode.HostConfig {
  return {
    NetworkMode: o.network,
    // setuid binaries and file capabilities cannot raise what a process may do.
    SecurityOpt: ['no-new-privileges:true'],
    CapDrop: ['ALL'],
    ...(o.runsAsRoot ? { CapAdd: [...ROOT_CAPABILITIES] } : {}),
    PidsLimit: APP_PIDS_LIMIT,
    ...(o.readonly ? { ReadonlyRootfs: true, Tmpfs: { ...READONLY_TMPFS } } : {}),
    ...(o.memory !== undefined ? { Memory: o.memory } : {}),
    ...(o.nanoCpus !== undefined ? { NanoCpus: o.nanoCpus } : {}),
  };
}
