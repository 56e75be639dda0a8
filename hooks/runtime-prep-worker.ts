// The child process of hooks/runtime-prep-process.ts: one runtime unpack or one prepared image,
// asked for and answered over the IPC channel, then it exits.
import { RuntimeUnpacks } from '../buildpacks/runtimes.js';
import { oneLine, SlipwayError } from '../core/errors.js';
import { createDocker } from '../runtime/host-setup.js';
import { ensurePreparedRuntime } from '../runtime/images.js';
import { scopeToInstance } from '../runtime/instance-engine.js';
import type { PrepReply, PrepRequest } from './runtime-prep-process.js';

const send = (reply: PrepReply, then: () => void = () => undefined): void => {
  process.send?.(reply, undefined, {}, then);
};

async function run(req: PrepRequest): Promise<PrepReply> {
  if (req.op === 'unpack') return { result: await new RuntimeUnpacks({ runtimesDir: req.runtimesDir, mirrorDir: req.mirrorDir }).ensure(req.pkg) };
  const docker = scopeToInstance(createDocker(), req.instanceId);
  return { result: await ensurePreparedRuntime({ docker, stackImage: req.stackImage, mounted: req.mounted, onProgress: (line) => send({ progress: line }) }) };
}

// The daemon gone: nobody waits for the answer. What is half done is never used (an unpack is
// renamed into place complete; an image is tagged at its commit).
process.on('disconnect', () => process.exit(1));
process.once('message', (req: PrepRequest) => {
  run(req)
    .catch((err: unknown): PrepReply => ({ error: { code: err instanceof SlipwayError ? err.code : 'E_INTERNAL', message: oneLine(err) } }))
    .then((reply) => send(reply, () => process.exit(0)));
});
