/**
 * What `nullifyThenPurge` costs in the request, per child: it detaches every child in the request's
 * transaction (one `UPDATE … RETURNING`) and records each detached key for the queue, where
 * `destroyAsync` writes one request row whatever the number of children. Both parents have N
 * children and no other policy; the per-row cost is the difference of the two p50s divided by N.
 * The queue does not run (worker: false): only the request is timed.
 *
 *   BENCH_SIZES=1000,10000,100000 BENCH_REPEATS=5 npm run bench:purge
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { definePolicy } from '../lib/index.js';
import { createDeletionTestApp } from '../test/support/deletion-test-app.js';
import { BENCH_ENTITIES, BenchAuthor, PurgeAuthor } from './fixtures/bench.entities.js';
import { percentile, printTable, timed, writeResult } from './support.js';

const sizes = (process.env.BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number);
const repeats = Number(process.env.BENCH_REPEATS ?? 5);

async function main(): Promise<void> {
  Logger.overrideLogger(['error']);
  const app = await createDeletionTestApp({
    database: 'deletion_bench_purge',
    entities: BENCH_ENTITIES,
    deletion: {
      worker: false,
      doctor: 'off',
      policies: [definePolicy(BenchAuthor, { books: 'destroyAsync' }), definePolicy(PurgeAuthor, { books: 'nullifyThenPurge' })],
    },
  });
  app.orm.config.set('debug', false);
  const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<{ id: number }[]>(query, params);

  const [warmAsync] = await sql(`insert into bench_author (name) values ('warm-up') returning id`);
  await app.deletions.destroy(BenchAuthor, warmAsync!.id);
  const [warmPurge] = await sql('insert into purge_author default values returning id');
  await sql('insert into purge_book (author_id) values (?)', [warmPurge!.id]);
  await app.deletions.destroy(PurgeAuthor, warmPurge!.id);

  const results = [];
  for (const n of sizes) {
    const asyncIds: number[] = [];
    const purgeIds: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const [author] = await sql(`insert into bench_author (name) values ('a') returning id`);
      await sql('insert into bench_book (author_id) select ? from generate_series(1, ?)', [author!.id, n]);
      const [purge] = await sql('insert into purge_author default values returning id');
      await sql('insert into purge_book (author_id) select ? from generate_series(1, ?)', [purge!.id, n]);
      asyncIds.push(author!.id);
      purgeIds.push(purge!.id);
    }
    await sql('vacuum analyze bench_book');
    await sql('vacuum analyze purge_book');
    const destroyAsync: number[] = [];
    const purge: number[] = [];
    for (let r = 0; r < repeats; r++) {
      destroyAsync.push(await timed(() => app.deletions.destroy(BenchAuthor, asyncIds[r]!)));
      purge.push(await timed(() => app.deletions.destroy(PurgeAuthor, purgeIds[r]!)));
    }
    await sql('truncate bench_book, purge_book, deletion_orphan');
    const entry = {
      children: n,
      nullifyThenPurge: { p50: percentile(purge, 50), samples: purge },
      destroyAsync: { p50: percentile(destroyAsync, 50), samples: destroyAsync },
      perRowMicroseconds: ((percentile(purge, 50) - percentile(destroyAsync, 50)) * 1000) / n,
    };
    results.push(entry);
    process.stdout.write(`N=${n}: nullifyThenPurge p50 ${entry.nullifyThenPurge.p50.toFixed(1)} ms, destroyAsync p50 ${entry.destroyAsync.p50.toFixed(1)} ms\n`);
  }
  await app.close();
  printTable([
    ['children', 'nullifyThenPurge p50 ms', 'destroyAsync p50 ms', 'per child µs'],
    ...results.map((e) => [e.children, e.nullifyThenPurge.p50, e.destroyAsync.p50, e.perRowMicroseconds]),
  ]);
  await writeResult('nullify-then-purge', { repeats, results });
}

void main();
