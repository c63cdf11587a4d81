/**
 * Peak memory growth of a worker process during a 1,000,000-child destroyAsync cascade (with a
 * per-row lifecycle hook and a set-based validator), against its footprint after a warm-up
 * cascade: the batch bounds memory, whatever the number of children.
 *
 *   BENCH_CHILDREN=1000000 npm run bench:memory
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { definePolicy } from '../lib/index.js';
import { createDeletionTestApp } from '../test/support/deletion-test-app.js';
import { waitForState } from '../test/support/wait.js';
import { BENCH_ENTITIES, BenchAuthor, hookCalls } from './fixtures/bench.entities.js';
import { printTable, writeResult } from './support.js';

const children = Number(process.env.BENCH_CHILDREN ?? 1_000_000);
const batchSize = Number(process.env.BENCH_BATCH ?? 1000);

async function main(): Promise<void> {
  Logger.overrideLogger(['error']);
  const app = await createDeletionTestApp({
    database: 'deletion_bench_memory',
    entities: BENCH_ENTITIES,
    deletion: { batchSize, doctor: 'off', policies: [definePolicy(BenchAuthor, { books: 'destroyAsync' })] },
  });
  app.orm.config.set('debug', false);
  const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<{ id: number }[]>(query, params);
  const cascade = async (n: number) => {
    const [author] = await sql(`insert into bench_author (name) values ('a') returning id`);
    await sql('insert into bench_book (author_id) select ? from generate_series(1, ?)', [author!.id, n]);
    await sql('analyze bench_book');
    const started = performance.now();
    const receipt = await app.deletions.destroy(BenchAuthor, author!.id);
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 3_600_000);
    return { status, seconds: (performance.now() - started) / 1000 };
  };

  await cascade(20_000); // warm-up: JIT, metadata caches, connection pool
  global.gc?.();
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  let peakHeap = baseline.heapUsed;
  const sampler = setInterval(() => {
    const now = process.memoryUsage();
    peakRss = Math.max(peakRss, now.rss);
    peakHeap = Math.max(peakHeap, now.heapUsed);
  }, 20);
  hookCalls.count = 0;
  const { status, seconds } = await cascade(children);
  clearInterval(sampler);
  // What stays after a full collection: growth that is not garbage would be a leak.
  global.gc?.();
  const after = process.memoryUsage();
  await app.close();

  const mb = (bytes: number) => bytes / 1024 / 1024;
  const result = {
    children,
    batchSize,
    state: status.state,
    hookCalls: hookCalls.count,
    seconds,
    rowsPerSecond: Math.round(children / seconds),
    baselineRssMb: mb(baseline.rss),
    peakRssGrowthMb: mb(peakRss - baseline.rss),
    peakHeapGrowthMb: mb(peakHeap - baseline.heapUsed),
    retainedHeapGrowthMb: mb(after.heapUsed - baseline.heapUsed),
    targetMb: 64,
  };
  printTable([
    ['children', 'state', 'hooks run', 'seconds', 'rows/s', 'peak RSS growth MB', 'peak heap growth MB', 'heap retained MB', 'target MB'],
    [children, status.state, result.hookCalls, seconds, result.rowsPerSecond, result.peakRssGrowthMb, result.peakHeapGrowthMb, result.retainedHeapGrowthMb, 64],
  ]);
  await writeResult('memory', result);
}

void main();
