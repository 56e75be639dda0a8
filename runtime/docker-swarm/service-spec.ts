import type { HealthCheck } from '../../core/store.js';
import { parseMemory } from '../../core/units.js';
import { LABELS, WEB_PORT, processEnv, type ProcessSpec } from '../containers.js';
import { APP_PIDS_LIMIT, ROOT_CAPABILITIES, READONLY_TMPFS, type ImageIsolation } from '../isolation.js';
import { DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT_S } from '../healthchecks.js';
import { LAUNCHER_PATH } from '../images.js';

/**
 * Labels of the task containers, for finding a task's release and this node's task containers.
 * (They also inherit `slipway.app` from the release image; docker-local skips them by the
 * swarm's own task label, runtime/containers.ts#SWARM_TASK_LABEL.)
 */
export const TASK_LABELS = { app: 'slipway.task.app', type: 'slipway.task.type', release: 'slipway.task.release' } as const;

const NS = 1_000_000;

/**
 * `<app>_<type>`: swarm refuses dots in service names (they must be DNS labels), so the docker
 * stack convention; task containers read `<app>_<type>.<slot>.<task id>`, and `ps` shows
 * `<app>.<type>.<slot>`. Pure.
 */
export function serviceName(app: string, type: string): string {
  return `${app}_${type}`;
}

const sq = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * The container health check gating a rolling update: each of the app's startup checks as an
 * HTTP GET to $PORT inside the container, or, without checks, a TCP connect. It runs through
 * the release's launcher (bash), with bash's /dev/tcp, so it needs nothing else in the image. Pure.
 */
export function healthScript(checks: readonly HealthCheck[]): string {
  const startup = checks.filter((c) => (c.type ?? 'startup') === 'startup');
  const connect = `exec 3<>/dev/tcp/127.0.0.1/${WEB_PORT} || exit 1`;
  if (startup.length === 0) return connect;
  const one = (c: HealthCheck): string =>
    [
      `( ${connect}`,
      `printf 'GET %s HTTP/1.0\\r\\nHost: localhost\\r\\nUser-Agent: slipway-healthcheck\\r\\n\\r\\n' ${sq(c.path)} >&3`,
      'r=$(cat <&3)',
      `case "\${r%%$'\\r'*}" in 'HTTP/1.'?' '[23]*) ;; *) exit 1 ;; esac`,
      ...(c.content !== undefined ? [`case "$r" in *${sq(c.content)}*) ;; *) exit 1 ;; esac`] : []),
      ')',
    ].join('; ');
  return startup.map(one).join(' && ');
}

export interface ServiceSpecInput {
  /** From runtime/process-spec.ts#processSpec; its index is ignored (the swarm numbers slots). */
  spec: ProcessSpec;
  /** The image reference every node pulls (the platform registry's). */
  image: string;
  replicas: number;
  isolation: ImageIsolation;
  network: string;
  instanceLabels: Record<string, string>;
  healthchecks: readonly HealthCheck[];
  /** How long a new task may take to answer before its failures count. */
  startPeriodMs: number;
  /** How long a replaced task is watched before the update moves on. */
  monitorMs: number;
  graceSeconds: number;
  /** Increments to restart every task without another change (`ps:restart`). */
  forceUpdate?: number;
}

/** The most tasks one update batch replaces, so a restart of ten replicas does not start ten at once. */
export const MAX_UPDATE_PARALLELISM = 3;

/**
 * How many tasks a rolling update (or its rollback) starts at a time: a quarter of the
 * replicas, at least one and at most MAX_UPDATE_PARALLELISM. Starting every new task at once
 * made a loaded machine miss the health deadline of all of them (README "Schedulers"). Pure.
 */
export function updateParallelism(replicas: number): number {
  return Math.min(MAX_UPDATE_PARALLELISM, Math.max(1, Math.ceil(replicas / 4)));
}

/**
 * How long a rollout of `replicas` tasks may take before it counts as failed: every batch may
 * use the whole health start period, its settle pause and a few seconds per task it starts,
 * plus a fixed margin for scheduling and pulls. Pure.
 */
export function rolloutWaitMs(o: { replicas: number; healthTimeoutMs: number; settleMs: number }): number {
  const parallelism = updateParallelism(o.replicas);
  const batches = Math.max(1, Math.ceil(o.replicas / parallelism));
  return 30_000 + batches * (o.healthTimeoutMs + o.settleMs + 3_000 * parallelism);
}

/** Update and rollback settings for `replicas`: batches gated by health, then a settle pause. Pure. */
export function rolloutConfig(replicas: number, monitorMs: number): { UpdateConfig: Record<string, unknown>; RollbackConfig: Record<string, unknown> } {
  // A start-first batch moves on once its new tasks run, which with a Healthcheck means
  // healthy; Monitor watches them for failures and Delay lets them settle before the next.
  const batch = { Parallelism: updateParallelism(replicas), Delay: monitorMs * NS, Monitor: monitorMs * NS, MaxFailureRatio: 0, Order: 'start-first' };
  return { UpdateConfig: { ...batch, FailureAction: 'rollback' }, RollbackConfig: { ...batch, FailureAction: 'pause' } };
}

/** A process type as a swarm service spec (the Engine API's ServiceSpec). Pure. */
export function serviceSpec(i: ServiceSpecInput): Record<string, unknown> {
  const s = i.spec;
  const labels = { ...i.instanceLabels, [LABELS.app]: s.app, [LABELS.type]: s.type, [LABELS.release]: String(s.release) };
  const env = processEnv({ ...s, index: 0 }).map((e) => (e.startsWith('DYNO=') ? `DYNO=${s.type}.{{.Task.Slot}}` : e));
  const checks = i.healthchecks;
  const timeoutS = Math.max(DEFAULT_TIMEOUT_S, ...checks.map((c) => c.timeout ?? DEFAULT_TIMEOUT_S));
  const retries = Math.max(DEFAULT_ATTEMPTS, ...checks.map((c) => c.attempts ?? DEFAULT_ATTEMPTS));
  return {
    Name: serviceName(s.app, s.type),
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: i.image,
        Args: [s.command],
        Env: env,
        Labels: { ...i.instanceLabels, [TASK_LABELS.app]: s.app, [TASK_LABELS.type]: s.type, [TASK_LABELS.release]: String(s.release) },
        Init: true,
        StopGracePeriod: i.graceSeconds * 1000 * NS,
        // The same confinement as docker-local's hardenedHostConfig (runtime/isolation.ts).
        CapabilityDrop: ['ALL'],
        ...(i.isolation.runsAsRoot ? { CapabilityAdd: [...ROOT_CAPABILITIES] } : {}),
        ...(i.isolation.readonly ? { ReadOnly: true, Mounts: Object.keys(READONLY_TMPFS).map((target) => ({ Type: 'tmpfs', Target: target, TmpfsOptions: { SizeBytes: 256 * 1024 * 1024, Mode: 0o1777 } })) } : {}),
        ...(s.web
          ? {
              Healthcheck: {
                Test: ['CMD', LAUNCHER_PATH, healthScript(checks)],
                Interval: 1000 * NS,
                Timeout: timeoutS * 1000 * NS,
                Retries: retries,
                StartPeriod: i.startPeriodMs * NS,
              },
            }
          : {}),
      },
      Resources: {
        Limits: {
          Pids: APP_PIDS_LIMIT,
          ...(s.memory ? { MemoryBytes: parseMemory(s.memory) } : {}),
          ...(s.cpus ? { NanoCPUs: Math.round(s.cpus * 1e9) } : {}),
        },
      },
      RestartPolicy: { Condition: 'on-failure', Delay: 1000 * NS, MaxAttempts: 10 },
      Networks: [{ Target: i.network }],
      LogDriver: { Name: 'json-file', Options: { 'max-size': '10m', 'max-file': '3' } },
      ...(i.forceUpdate ? { ForceUpdate: i.forceUpdate } : {}),
    },
    Mode: { Replicated: { Replicas: i.replicas } },
    // New tasks start beside the old, a few at a time, and must be healthy before an old one
    // stops; a failure rolls the service back to the spec that served (README "Schedulers").
    ...rolloutConfig(i.replicas, i.monitorMs),
    // Each web task publishes $PORT on a free port of its node (host mode) and the router dials
    // every task: the routing mesh (ingress, VIPs) needs the kernel's IPVS, which hosts and
    // nested engines may lack, and the router balances and retries across upstreams anyway.
    ...(s.web ? { EndpointSpec: { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: WEB_PORT, PublishMode: 'host' }] } } : { EndpointSpec: { Mode: 'dnsrr' } }),
  };
}
