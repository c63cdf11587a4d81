/**
 * A deletion worker in a process of its own, for the scaling benchmark.
 * Usage: node --import @swc-node/register/esm-register bench/bench-worker.process.ts <database>
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createDeletionTestApp } from '../test/support/deletion-test-app.js';
import { BENCH_ENTITIES, SCALING_POLICIES } from './fixtures/bench.entities.js';

async function main(database: string): Promise<void> {
  Logger.overrideLogger(['error']);
  const app = await createDeletionTestApp({
    database,
    keepSchema: true,
    entities: BENCH_ENTITIES,
    deletion: { doctor: 'off', worker: { concurrency: 1 }, policies: SCALING_POLICIES },
  });
  app.orm.config.set('debug', false);
  process.stdout.write('worker ready\n');
}

void main(process.argv[2]!);
