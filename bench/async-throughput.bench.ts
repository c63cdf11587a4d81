/**
 * Queued cascade throughput, against this machine's own limit measured in the same run.
 *
 *   npm run bench -- [rows]     (default 100,000 rows)
 *
 * - destroyAsync with a per-row lifecycle hook (Item has @BeforeDelete and @AfterDelete);
 * - deleteAllAsync (set-based batches);
 * - baseline: a server-side keyset loop (a PL/pgSQL procedure) deleting the same number of rows
 *   in committed batches of the same size: what PostgreSQL itself can do here.
 * Prints a table and writes bench/results/async-throughput.json.
 */
import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { Logger } from '@nestjs/common';
import { DeletionEvents, definePolicy } from '../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../test/fixtures/async.entities.js';
import { seedOwner } from '../test/fixtures/async.seed.js';
import { createDeletionTestApp } from '../test/support/deletion-test-app.js';
import { waitForState } from '../test/support/wait.js';

const rows = Number(process.argv[2] ?? 100_000);
const batchSize = Number(process.env.BENCH_BATCH ?? 1000);

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

  // The end of a cascade is the worker's `completed` event for its root request, as it happens
  // (polling the status would add up to its interval to a measure of a few hundred milliseconds).
  const events = app.module.get(DeletionEvents);
  const completedAt = new Map<string, number>();
  events.on('completed', (event) => {
    if (event.root) {
      completedAt.set(event.requestId, performance.now());
    }
  });
  const timeCascade = async (shape: { items?: number; logs?: number }) => {
    const id = await seedOwner(app.em(), shape);
    await sql.execute('vacuum analyze');
    const started = performance.now();
    const receipt = await app.deletions.destroy(Owner, id);
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 600_000);
    if (status.state !== 'completed' || !completedAt.has(receipt.requestId!)) {
      throw new Error(`cascade ${status.state}: ${JSON.stringify(status.errors)}`);
    }
    return (completedAt.get(receipt.requestId!)! - started) / 1000;
  };
  const timeBaseline = async () => {
    const id = await seedOwner(app.em(), { logs: rows });
    await sql.execute('vacuum analyze');
    const started = performance.now();
    await sql.execute('call bench_keyset_delete(?, ?)', [id, batchSize]);
    return (performance.now() - started) / 1000;
  };

  const baseline = await timeBaseline();
  const destroyAsync = await timeCascade({ items: rows });
  const deleteAllAsync = await timeCascade({ logs: rows });
  await app.close();

  const rate = (seconds: number) => Math.round(rows / seconds);
  const result = {
    rows,
    batchSize,
    baseline: { seconds: baseline, rowsPerSecond: rate(baseline) },
    destroyAsync: { seconds: destroyAsync, rowsPerSecond: rate(destroyAsync), ratioToBaseline: baseline / destroyAsync },
    deleteAllAsync: { seconds: deleteAllAsync, rowsPerSecond: rate(deleteAllAsync), ratioToBaseline: baseline / deleteAllAsync },
  };
  const table = [
    ['measure', 'seconds', 'rows/s', 'ratio to baseline'],
    ['server-side keyset loop (baseline)', baseline.toFixed(2), rate(baseline), '1.00'],
    ['destroyAsync (per-row hooks)', destroyAsync.toFixed(2), rate(destroyAsync), result.destroyAsync.ratioToBaseline.toFixed(2)],
    ['deleteAllAsync', deleteAllAsync.toFixed(2), rate(deleteAllAsync), result.deleteAllAsync.ratioToBaseline.toFixed(2)],
  ];
  process.stdout.write(`${rows} rows, batches of ${batchSize}\n${table.map((r) => r.map(String).map((c, i) => (i ? c.padStart(12) : c.padEnd(36))).join('')).join('\n')}\n`);
  await writeFile(new URL('./results/async-throughput.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
}

void main();
