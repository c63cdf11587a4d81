/**
 * Queued cascade throughput, against this machine's own limit measured in the same run.
 *
 *   npm run bench -- [rows]     (default 100,000 rows)
 *
 * - destroyAsync with a per-row lifecycle hook (Item has @BeforeDelete and @AfterDelete);
 * - deleteAllAsync (set-based batches);
 * - baseline: a server-side keyset loop (a PL/pgSQL procedure) deleting the same number of rows
 *   in committed batches of the same size: what PostgreSQL itself can do here.
 *
 * Batches of 5,000 (BENCH_BATCH). Each measure runs BENCH_ROUNDS times (default 3), the three
 * measures in turn in each round, after one small warm-up cascade; every run starts on freshly
 * seeded, vacuumed rows right after a checkpoint, so none inherits another's dirty pages or pays for
 * a checkpoint the others skip (and each deletes rows as an application deletes old rows: written
 * before the last checkpoint, so PostgreSQL logs each page's first change in full). The medians are
 * reported, with every run's seconds beside them.
 * Prints a table and writes bench/results/async-throughput.json.
 */
import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { Logger } from '@nestjs/common';
import { DeletionEvents, definePolicy } from '../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../test/fixtures/async.entities.js';
import { seedOwner } from '../test/fixtures/async.seed.js';
import { createDeletionTestApp } from '../test/support/deletion-test-app.js';

const rows = Number(process.argv[2] ?? 100_000);
const batchSize = Number(process.env.BENCH_BATCH ?? 5000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

async function main(): Promise<void> {
  Logger.overrideLogger(['error']);
  const app = await createDeletionTestApp({
    database: 'deletion_bench_throughput',
    entities: ASYNC_ENTITIES,
    deletion: { batchSize, doctor: 'off', policies: [definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync' })] },
  });
  app.orm.config.set('debug', false);
  const sql = app.em().getConnection();
  await sql.execute(`
    create or replace procedure bench_keyset_delete(p_owner int, p_batch int) language plpgsql as $$
    declare last_id int := 0; n int;
    begin
      loop
        with d as (delete from log where id in (select id from log where owner_id = p_owner and id > last_id order by id limit p_batch) returning id)
        select count(*), coalesce(max(id), last_id) into n, last_id from d;
        commit;
        exit when n < p_batch;
      end loop;
    end $$`);

  // The end of a cascade is the worker's `completed` event for its root request, as it happens.
  // Nothing polls meanwhile: status() runs in this process, and every call would take the event loop
  // and the cores from the worker being measured.
  const events = app.module.get(DeletionEvents);
  const outcomes = new Map<string, number | Error>();
  let wake = () => {};
  events.on('completed', (event) => {
    if (event.root) {
      outcomes.set(event.requestId, performance.now());
      wake();
    }
  });
  events.on('failed', (event) => {
    outcomes.set(event.rootId, new Error(`cascade failed: ${event.error.message}`));
    wake();
  });
  const outcome = async (requestId: string): Promise<number> => {
    const deadline = Date.now() + 600_000;
    const tick = setInterval(() => wake(), 1000);
    try {
      while (!outcomes.has(requestId)) {
        if (Date.now() > deadline) {
          throw new Error(`cascade ${requestId} neither completed nor failed within 600 s`);
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      clearInterval(tick);
    }
    const end = outcomes.get(requestId)!;
    if (end instanceof Error) {
      throw end;
    }
    return end;
  };
  const settle = async () => {
    await sql.execute('vacuum analyze');
    await sql.execute('checkpoint');
  };
  const timeCascade = async (shape: { items?: number; logs?: number }) => {
    const id = await seedOwner(app.em(), shape);
    await settle();
    const started = performance.now();
    const receipt = await app.deletions.destroy(Owner, id);
    return ((await outcome(receipt.requestId!)) - started) / 1000;
  };
  const timeBaseline = async () => {
    const id = await seedOwner(app.em(), { logs: rows });
    await settle();
    const started = performance.now();
    await sql.execute('call bench_keyset_delete(?, ?)', [id, batchSize]);
    return (performance.now() - started) / 1000;
  };

  await timeCascade({ items: Math.min(rows, 10_000), logs: Math.min(rows, 10_000) });
  const runs = { baseline: [] as number[], destroyAsync: [] as number[], deleteAllAsync: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    runs.baseline.push(await timeBaseline());
    runs.destroyAsync.push(await timeCascade({ items: rows }));
    runs.deleteAllAsync.push(await timeCascade({ logs: rows }));
  }
  await app.close();
  const baseline = median(runs.baseline);
  const destroyAsync = median(runs.destroyAsync);
  const deleteAllAsync = median(runs.deleteAllAsync);

  const rate = (seconds: number) => Math.round(rows / seconds);
  const result = {
    rows,
    batchSize,
    rounds,
    baseline: { seconds: baseline, rowsPerSecond: rate(baseline), runs: runs.baseline },
    destroyAsync: { seconds: destroyAsync, rowsPerSecond: rate(destroyAsync), ratioToBaseline: baseline / destroyAsync, runs: runs.destroyAsync },
    deleteAllAsync: { seconds: deleteAllAsync, rowsPerSecond: rate(deleteAllAsync), ratioToBaseline: baseline / deleteAllAsync, runs: runs.deleteAllAsync },
  };
  const table = [
    ['measure', 'seconds', 'rows/s', 'ratio to baseline'],
    ['server-side keyset loop (baseline)', baseline.toFixed(2), rate(baseline), '1.00'],
    ['destroyAsync (per-row hooks)', destroyAsync.toFixed(2), rate(destroyAsync), result.destroyAsync.ratioToBaseline.toFixed(2)],
    ['deleteAllAsync', deleteAllAsync.toFixed(2), rate(deleteAllAsync), result.deleteAllAsync.ratioToBaseline.toFixed(2)],
  ];
  const spread = Object.entries(runs).map(([name, seconds]) => `${name}: ${seconds.map((s) => s.toFixed(3)).join(' / ')} s`);
  process.stdout.write(`${rows} rows, batches of ${batchSize}, median of ${rounds} runs each\n${table.map((r) => r.map(String).map((c, i) => (i ? c.padStart(12) : c.padEnd(36))).join('')).join('\n')}\nruns: ${spread.join('; ')}\n`);
  await writeFile(new URL('./results/async-throughput.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

void main();
