import { expect } from 'vitest';
import { SlipwayError } from '../../core/errors.js';

/** The promise rejects with a SlipwayError whose message is one line; returns it for more checks. */
export async function rejectsOneLine(p: Promise<unknown>): Promise<SlipwayError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SlipwayError);
  expect((err as SlipwayError).message).not.toContain('\n');
  return err as SlipwayError;
}

/** The function throws a SlipwayError whose message is one line; returns it for more checks. */
export function throwsOneLine(fn: () => unknown): SlipwayError {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SlipwayError);
  expect((err as SlipwayError).message).not.toContain('\n');
  return err as SlipwayError;
}
