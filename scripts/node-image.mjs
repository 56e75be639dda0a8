#!/usr/bin/env node
// The image of a throw-away swarm node for the multi-node test (test/e2e/swarm-multinode.test.ts):
// Debian with Docker Engine (docker.io) and iptables, built from this machine's apt sources with
// mmdebstrap the way the stack image is (runtime/stack.ts), so nothing is pulled from a
// registry. Its tag is the recipe's hash: built once per machine and recipe, kept like the stack.
// Prints the image reference on stdout (progress goes to stderr).
//   node scripts/node-image.mjs            (needs the build: ./scripts/ensure-build)
import { buildRecipeImage, hostSuite, imageId, stackHash } from '../dist/runtime/stack.js';
import { createDocker } from '../dist/runtime/host-setup.js';
import { createLogger } from '../dist/core/log.js';

/** Test-only names: no platform image is `slipway-test/*`. */
const REPO = 'slipway-test/swarm-node';
const LABEL = 'slipway.test-node';

/** Everything that decides the node image's content; its hash is the tag. */
const NODE_RECIPE = {
  suite: hostSuite(),
  variant: 'minbase',
  packages: ['docker.io', 'iptables', 'ca-certificates', 'procps', 'iproute2'],
  customizeHooks: [
    // The entry point: /sys and the cgroup hierarchies read-write, as --privileged would mount
    // them, then dockerd with the container's arguments. The test cannot use --privileged: it
    // asks for every capability, and a host whose bounding set lacks one (CAP_SYS_RESOURCE on
    // the CI machine) refuses the container ("unable to apply caps").
    `printf '%s\\n' '#!/bin/sh' 'set -e' 'mount -o remount,rw /sys' 'while read -r dev mnt type rest; do if [ "$type" = cgroup ]; then mount -o remount,rw,bind "$mnt"; fi; done < /proc/self/mounts' 'exec dockerd "$@"' > "$1"/usr/local/sbin/swarm-node`,
    'chmod 755 "$1"/usr/local/sbin/swarm-node',
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
  ],
  // dockerd is the container's only process; the test passes its flags as the command.
  changes: ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'ENTRYPOINT ["/usr/local/sbin/swarm-node"]'],
};

const docker = createDocker();
const tag = stackHash(NODE_RECIPE);
const ref = `${REPO}:${tag}`;
if ((await imageId(docker, ref)) === null) {
  const progress = (line) => process.stderr.write(`${line}\n`);
  await buildRecipeImage(docker, { recipe: NODE_RECIPE, repo: REPO, tag, label: LABEL, what: 'swarm node image' }, { progress, logger: createLogger('warn') });
}
process.stdout.write(`${ref}\n`);
