import type { Worker } from 'bullmq';
import { CascadeProcessor } from '../../lib/queue/cascade.processor.js';
import type { DeletionTestApp } from './deletion-test-app.js';

/** The BullMQ worker the DeletionModule started in this test app. */
export function cascadeWorker(app: DeletionTestApp): Worker {
  return app.module.get(CascadeProcessor).worker;
}

/** Runs `fn` with the worker paused, so queued work stays queued while the test looks at it. */
export async function whilePaused<T>(app: DeletionTestApp, fn: () => Promise<T>): Promise<T> {
  const worker = cascadeWorker(app);
  await worker.pause();
  try {
    return await fn();
  } finally {
    worker.resume();
  }
}
