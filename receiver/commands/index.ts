import { appCommands } from './apps.js';
import { opsCommands } from './ops.js';
import { mirrorCommands } from './mirror.js';
import { lifeCommands } from './life.js';
import { buildpackCommands } from './buildpacks.js';
import { platformCommands } from './platform.js';
import { sshKeyCommands } from './ssh-keys.js';
import { tokenCommands } from './tokens.js';
import { gitCommands } from './git.js';
import { userCommands } from './users.js';
import { serviceCommands } from './services.js';
import { ssoCommands } from './sso.js';
import { schedulerCommands } from './schedulers.js';
import type { Command } from './types.js';

export { runCommand } from './registry.js';
export type { Command, CommandIO, Platform, ProcessInfo, StatusInfo } from './types.js';

/** Every command of the contract, in help order. */
export const commands: readonly Command[] = [
  ...platformCommands,
  ...appCommands,
  ...gitCommands,
  ...sshKeyCommands,
  ...tokenCommands,
  ...userCommands,
  ...ssoCommands,
  ...opsCommands,
  ...serviceCommands,
  ...schedulerCommands,
  ...lifeCommands,
  ...buildpackCommands,
  ...mirrorCommands,
];
