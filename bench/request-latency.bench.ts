/**
 * Request-path latency of deleting a parent with N children, p50 and p95 over repeated deletes:
 * the module (`destroyAsync` + one set-based validator; the children stay for the queue) against
 * (a) the same parent deleted through a foreign key ON DELETE CASCADE, (b) MikroORM's own
 * Cascade.REMOVE with the children loaded (up to 100,000), and the floors of any request path:
 * (c) `rawDelete`, a transaction of one `DELETE` of the parent by key (begin, delete, commit, on
 * MikroORM's connection) of a parent with the same N children, and (d) `plainOrm`, MikroORM's
 * find + remove + flush of a parent with no policy. All on the same database, same run.
 *
 *   BENCH_SIZES=10000,100000,1000000 BENCH_REPEATS=7 npm run bench:latency
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { definePolicy } from '../lib/index.js';
import { createDeletionTestApp } from '../test/support/deletion-test-app.js';
import { BENCH_ENTITIES, BenchAuthor, OrmAuthor, PlainAuthor } from './fixtures/bench.entities.js';
import { percentile, printTable, timed, writeResult } from './support.js';

const sizes = (process.env.BENCH_SIZES ?? '10000,100000,1000000').split(',').map(Number);
const repeats = Number(process.env.BENCH_REPEATS ?? 7);
// MikroORM's own cascade loads and flushes every child: at 100,000 it ran for over 10 minutes here.
const ormLimit = Number(process.env.BENCH_ORM_MAX ?? 100_000);

async function main(): Promise<void> {
  Logger.overrideLogger(['error']);
  const app = await createDeletionTestApp({
    database: 'deletion_bench_latency',
    entities: BENCH_ENTITIES,
    deletion: { worker: false, doctor: 'off', policies: [definePolicy(BenchAuthor, { books: 'destroyAsync' })] },
  });
  app.orm.config.set('debug', false);
  const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<{ id: number }[]>(query, params);
  await sql('create table fk_parent (id serial primary key)');
  await sql('create table fk_child (id serial primary key, parent_id int not null references fk_parent on delete cascade)');
  await sql('create index on fk_child (parent_id)');

  // Warm-up, not counted: the first deletion compiles the code paths and the validator's statement.
  const [warm] = await sql(`insert into bench_author (name) values ('warm-up') returning id`);
  await app.deletions.destroy(BenchAuthor, warm!.id);

  const results = [];
  for (const n of sizes) {
    const module: number[] = [];
    const cascade: number[] = [];
    const orm: number[] = [];
    const raw: number[] = [];
    const plain: number[] = [];
    // All parents first, then the timed deletes back to back: a delete is not timed against the
    // bulk insert that just made its children.
    const authors: number[] = [];
    const rawAuthors: number[] = [];
    const plainAuthors: number[] = [];
    const parents: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const [author] = await sql(`insert into bench_author (name) values ('a') returning id`);
      await sql('insert into bench_book (author_id) select ? from generate_series(1, ?)', [author!.id, n]);
      const [rawAuthor] = await sql(`insert into bench_author (name) values ('raw') returning id`);
      await sql('insert into bench_book (author_id) select ? from generate_series(1, ?)', [rawAuthor!.id, n]);
      const [plainAuthor] = await sql(`insert into plain_author (name) values ('plain') returning id`);
      rawAuthors.push(rawAuthor!.id);
      plainAuthors.push(plainAuthor!.id);
      const [parent] = await sql('insert into fk_parent default values returning id');
      await sql('insert into fk_child (parent_id) select ? from generate_series(1, ?)', [parent!.id, n]);
      authors.push(author!.id);
      parents.push(parent!.id);
    }
    await sql('vacuum analyze bench_book');
    await sql('vacuum analyze fk_child');
    for (let r = 0; r < repeats; r++) {
      module.push(await timed(() => app.deletions.destroy(BenchAuthor, authors[r]!)));
      cascade.push(await timed(() => sql('delete from fk_parent where id = ?', [parents[r]!])));
      const connection = app.orm.em.getConnection();
      raw.push(await timed(() => connection.transactional((trx) => connection.execute('delete from bench_author where id = ?', [rawAuthors[r]!], 'run', trx))));
      plain.push(
        await timed(async () => {
          const em = app.em();
          em.remove(await em.findOneOrFail(PlainAuthor, plainAuthors[r]!));
          await em.flush();
        }),
      );
    }
    for (let r = 0; n <= ormLimit && r < (n > 10_000 ? 1 : 3); r++) {
      const [owner] = await sql('insert into orm_author default values returning id');
      await sql('insert into orm_book (author_id) select ? from generate_series(1, ?)', [owner!.id, n]);
      orm.push(
        await timed(async () => {
          const em = app.em();
          const loaded = await em.findOneOrFail(OrmAuthor, owner!.id, { populate: ['books'] });
          em.remove(loaded);
          await em.flush();
        }),
      );
    }
    await sql('truncate bench_book, fk_child, orm_book');
    const entry = {
      children: n,
      module: { p50: percentile(module, 50), p95: percentile(module, 95), samples: module },
      fkCascade: { p50: percentile(cascade, 50), p95: percentile(cascade, 95), samples: cascade },
      rawDelete: { p50: percentile(raw, 50), p95: percentile(raw, 95), samples: raw },
      plainOrm: { p50: percentile(plain, 50), p95: percentile(plain, 95), samples: plain },
      ormCascade: orm.length ? { p50: percentile(orm, 50), p95: percentile(orm, 95), samples: orm } : null,
    };
    results.push(entry);
    process.stdout.write(
      `N=${n}: module p50 ${entry.module.p50.toFixed(2)} ms, raw DELETE p50 ${entry.rawDelete.p50.toFixed(2)} ms, plain ORM p50 ${entry.plainOrm.p50.toFixed(2)} ms, FK cascade p50 ${entry.fkCascade.p50.toFixed(1)} ms\n`,
    );
  }
  await app.close();

  printTable([
    ['children', 'module p50 ms', 'module p95 ms', 'raw DELETE p50 ms', 'module / raw', 'plain ORM p50 ms', 'FK cascade p50 ms', 'ratio', 'ORM Cascade.REMOVE p50 ms', 'ratio'],
    ...results.map((e) => [
      e.children,
      e.module.p50,
      e.module.p95,
      e.rawDelete.p50,
      `${(e.module.p50 / e.rawDelete.p50).toFixed(2)}x`,
      e.plainOrm.p50,
      e.fkCascade.p50,
      `${(e.fkCascade.p50 / e.module.p50).toFixed(1)}x`,
      e.ormCascade ? e.ormCascade.p50 : '-',
      e.ormCascade ? `${(e.ormCascade.p50 / e.module.p50).toFixed(0)}x` : '-',
    ]),
  ]);
  await writeResult('request-latency', {
    repeats,
    // Issue 14: the module's request at most 4x a raw single-transaction DELETE of the parent.
    target: { moduleToRawDeleteP50: 4 },
    ratios: results.map((e) => ({ children: e.children, moduleToRawDeleteP50: e.module.p50 / e.rawDelete.p50, moduleToPlainOrmP50: e.module.p50 / e.plainOrm.p50 })),
    results,
  });
}

void main();
