/**
 * Queued throughput with two worker processes against one: P parents with C children each are
 * deleted at once (the requests queue up), then K worker processes drain them.
 *
 *   BENCH_PARENTS=16 BENCH_CHILDREN=5000 npm run bench:workers
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { Logger } from '@nestjs/common';
import { createDeletionTestApp, type DeletionTestApp } from '../test/support/deletion-test-app.js';
import { waitUntil } from '../test/support/wait.js';
import { BENCH_ENTITIES, BenchAuthor, SCALING_POLICIES } from './fixtures/bench.entities.js';
import { printTable, writeResult } from './support.js';

const parents = Number(process.env.BENCH_PARENTS ?? 16);
const childrenEach = Number(process.env.BENCH_CHILDREN ?? 5000);
const database = 'deletion_bench_workers';

async function drain(app: DeletionTestApp, workers: number): Promise<number> {
  const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<{ id: number; n?: string }[]>(query, params);
  await sql('truncate bench_author, bench_book, deletion_request');
  const ids: number[] = [];
  for (let p = 0; p < parents; p++) {
    const [author] = await sql(`insert into bench_author (name) values ('a') returning id`);
    await sql('insert into bench_book (author_id) select ? from generate_series(1, ?)', [author!.id, childrenEach]);
    ids.push(author!.id);
  }
  await sql('analyze bench_book');
  for (const id of ids) {
    await app.deletions.destroy(BenchAuthor, id);
  }
  const processes = Array.from({ length: workers }, () =>
    spawn(process.execPath, ['--import', '@swc-node/register/esm-register', 'bench/bench-worker.process.ts', database], {
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  try {
    await Promise.all(processes.map((child) => waitUntil(async () => child.stdout!.read()?.toString().includes('worker ready') ?? false, 60_000, 'worker ready')));
    const started = performance.now();
    await waitUntil(async () => Number((await sql(`select count(*) as n from deletion_request where state <> 'completed'`))[0]!.n) === 0, 600_000, 'drained');
    return (performance.now() - started) / 1000;
  } finally {
    for (const child of processes) {
      child.kill('SIGTERM');
    }
  }
}

async function main(): Promise<void> {
  Logger.overrideLogger(['error']);
  const app = await createDeletionTestApp({ database, entities: BENCH_ENTITIES, deletion: { worker: false, doctor: 'off', policies: SCALING_POLICIES } });
  app.orm.config.set('debug', false);
  const one = await drain(app, 1);
  const two = await drain(app, 2);
  await app.close();
  const rows = parents * childrenEach;
  const result = { parents, childrenEach, oneWorker: { seconds: one, rowsPerSecond: Math.round(rows / one) }, twoWorkers: { seconds: two, rowsPerSecond: Math.round(rows / two) }, speedup: one / two };
  printTable([
    ['workers', 'seconds', 'rows/s', 'speed-up'],
    [1, one, result.oneWorker.rowsPerSecond, '1.00x'],
    [2, two, result.twoWorkers.rowsPerSecond, `${result.speedup.toFixed(2)}x`],
  ]);
  await writeResult('workers', result);
}

void main();
