/**
 * A deletion worker in a process of its own, for the crash tests: it boots the test app on an
 * existing database and queue and processes cascades until it is killed.
 * Usage: node --import @swc-node/register/esm-register test/support/worker-process.ts <database>
 */
import 'reflect-metadata';
import { MikroORM } from '@mikro-orm/core';
import { ASYNC_ENTITIES } from '../fixtures/async.entities.js';
import { ItemAuditSubscriber } from '../fixtures/audit.subscriber.js';
import { CRASH_BATCH_SIZE, CRASH_POLICIES, CRASH_WORKER } from '../fixtures/crash.config.js';
import { createDeletionTestApp } from './deletion-test-app.js';

async function main(database: string): Promise<void> {
  const app = await createDeletionTestApp({
    database,
    keepSchema: true,
    entities: ASYNC_ENTITIES,
    deletion: { batchSize: CRASH_BATCH_SIZE, worker: CRASH_WORKER, relay: { intervalMs: 0 }, policies: CRASH_POLICIES },
  });
  app.module.get(MikroORM).em.getEventManager().registerSubscriber(new ItemAuditSubscriber());
  process.stdout.write('worker ready\n');
}

void main(process.argv[2]!);
