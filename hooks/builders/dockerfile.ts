import type Dockerode from 'dockerode';
import type PQueue from 'p-queue';
import type { Config } from '../../core/config.js';
import { SlipwayError } from '../../core/errors.js';
import { header } from '../../buildpacks/output.js';
import { readProcfile } from '../../buildpacks/procfile.js';
import { buildDockerfileImage } from '../../runtime/dockerfile.js';
import { detectDockerfile } from './dockerfile-detect.js';
import { processTypesFrom } from './process-types.js';
import type { Builder, BuildContext, Built } from './types.js';

export interface DockerfileBuilderDeps {
  docker: Dockerode;
  config: Config;
  buildQueue: PQueue;
}

/**
 * The engine builds the app's Dockerfile, offline. The Procfile decides the processes; without
 * one, the image's ENTRYPOINT and CMD run as `web`.
 */
export function dockerfileBuilder(deps: DockerfileBuilderDeps): Builder {
  return { name: 'dockerfile', detects: detectDockerfile, build: (ctx) => buildWithDockerfile(deps, ctx) };
}

async function buildWithDockerfile(deps: DockerfileBuilderDeps, { app, version, appDir, record, say, signal, imageLabels }: BuildContext): Promise<Built> {
  const built = await deps.buildQueue.add(() =>
    buildDockerfileImage({
      docker: deps.docker,
      appDir,
      app,
      version,
      config: record.config,
      labels: imageLabels,
      timeoutSeconds: deps.config.buildTimeoutSeconds,
      memory: deps.config.buildMemory,
      pidsLimit: deps.config.buildPidsLimit,
      say: (line) => say(`${line}\n`),
      signal,
    }),
  );
  const procfile = await readProcfile(appDir);
  const hasProcfile = procfile !== null;
  if (!hasProcfile && built.command === null) {
    throw new SlipwayError('E_PROCFILE', 'the image has no CMD and the app no Procfile: add CMD to the Dockerfile or a Procfile such as "web: ./server"');
  }
  const processTypes = processTypesFrom(procfile, built.command === null ? {} : { web: built.command });
  say(header(`Process types: ${Object.keys(processTypes).join(', ')}${hasProcfile ? '' : ' (the image\'s CMD)'}`));
  return { buildpacks: ['dockerfile'], processTypes, configVars: {}, image: built.image };
}
