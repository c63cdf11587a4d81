import { setTimeout as sleep } from 'node:timers/promises';
import type { DeletionService, DeletionStatus, RequestState } from '../../lib/index.js';

/** Polls `status(requestId)` until its state is one of `states`; fails with the last status after `timeoutMs`. */
export async function waitForState(
  deletions: DeletionService,
  requestId: string,
  states: readonly RequestState[] = ['completed', 'failed'],
  timeoutMs = 30_000,
): Promise<DeletionStatus> {
  const deadline = Date.now() + timeoutMs;
  let status = await deletions.status(requestId);
  while (!states.includes(status.state)) {
    if (Date.now() > deadline) {
      throw new Error(`request ${requestId} did not reach ${states.join('/')} within ${timeoutMs} ms: ${JSON.stringify(status)}`);
    }
    await sleep(50);
    status = await deletions.status(requestId);
  }
  return status;
}

/** Polls `probe` until it returns true, or throws after `timeoutMs`. */
export async function waitUntil(probe: () => Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what} not reached within ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}
