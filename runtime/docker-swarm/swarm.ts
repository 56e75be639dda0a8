import type Dockerode from 'dockerode';
import { SlipwayError } from '../../core/errors.js';

/** Where this engine stands in a swarm: `active` (a member), `inactive`, or on its way. */
export async function swarmState(docker: Dockerode): Promise<{ state: string; manager: boolean; nodeAddr: string }> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeAddr?: string } };
  return { state: info.Swarm?.LocalNodeState ?? 'inactive', manager: info.Swarm?.ControlAvailable === true, nodeAddr: info.Swarm?.NodeAddr ?? '' };
}

/**
 * Makes this engine a swarm manager: a single-node swarm advertising on `advertiseAddr`
 * (loopback unless the operator configures an address other nodes can reach, README
 * "Schedulers"). An engine already in a swarm is left as it is; a worker cannot run services
 * and says so.
 */
export async function ensureSwarm(docker: Dockerode, o: { advertiseAddr: string; progress: (line: string) => void }): Promise<void> {
  const s = await swarmState(docker);
  if (s.state === 'active' && s.manager) return;
  if (s.state === 'active') {
    throw new SlipwayError('E_DOCKER', 'this Docker Engine is a swarm worker: the docker-swarm scheduler needs a manager (docker node promote, or run slipway on a manager)');
  }
  o.progress(`-----> Initialising a single-node Docker swarm (advertising ${o.advertiseAddr})`);
  try {
    await docker.swarmInit({ ListenAddr: `${o.advertiseAddr}:2377`, AdvertiseAddr: o.advertiseAddr });
  } catch (err) {
    // Another process initialised it meanwhile: that is the state we want.
    if ((await swarmState(docker)).manager) return;
    throw new SlipwayError('E_DOCKER', `docker swarm init failed: ${(err as { json?: { message?: string } }).json?.message ?? (err as Error).message}`, { cause: err });
  }
}

/** The swarm's nodes, as `nodes:list` shows them. */
export async function listNodes(docker: Dockerode) {
  const nodes = (await docker.listNodes().catch((err: unknown) => {
    throw notManager(err);
  })) as {
    ID: string;
    Description?: { Hostname?: string };
    Spec?: { Role?: string; Availability?: string };
    Status?: { State?: string; Addr?: string };
    ManagerStatus?: { Leader?: boolean };
  }[];
  return nodes
    .map((n) => ({
      id: n.ID,
      hostname: n.Description?.Hostname ?? '',
      role: n.Spec?.Role ?? '',
      state: n.Status?.State ?? '',
      availability: n.Spec?.Availability ?? '',
      address: n.Status?.Addr ?? '',
      leader: n.ManagerStatus?.Leader === true,
    }))
    .sort((a, b) => a.role.localeCompare(b.role) || a.hostname.localeCompare(b.hostname));
}

/**
 * One line on the swarm for `slipway status`, e.g. `active, manager, 2 nodes (2 ready)`; an
 * engine that is no manager says what to do.
 */
export async function swarmSummary(docker: Dockerode): Promise<string> {
  const s = await swarmState(docker);
  if (!s.manager) return `${s.state}, not a manager: docker-swarm apps cannot be deployed (restart slipway server, which initialises a swarm)`;
  const nodes = await listNodes(docker);
  const ready = nodes.filter((n) => n.state === 'ready').length;
  return `${s.state}, manager, ${nodes.length} node${nodes.length === 1 ? '' : 's'} (${ready} ready)`;
}

/** What a new node runs to join as a worker: `docker swarm join --token <token> <addr>:2377`. */
export async function joinCommand(docker: Dockerode): Promise<string[]> {
  const swarm = (await docker.swarmInspect().catch((err: unknown) => {
    throw notManager(err);
  })) as { JoinTokens?: { Worker?: string } };
  const { nodeAddr } = await swarmState(docker);
  const token = swarm.JoinTokens?.Worker;
  if (!token || !nodeAddr) throw new SlipwayError('E_DOCKER', 'the swarm has no worker join token: is this engine a swarm manager?');
  return ['docker', 'swarm', 'join', '--token', token, `${nodeAddr}:2377`];
}

function notManager(err: unknown): SlipwayError {
  const message = (err as { json?: { message?: string } }).json?.message ?? (err as Error).message;
  return new SlipwayError('E_DOCKER', `this Docker Engine is not a swarm manager (${message}): start slipway server, which initialises one`);
}
