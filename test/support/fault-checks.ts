import type { DeletionTestApp } from './deletion-test-app.js';

/** The first column of the first row of `sql`, as a number. */
export async function scalar(app: DeletionTestApp, sql: string, params: unknown[] = []): Promise<number> {
  const rows = await app.em().getConnection().execute<Record<string, unknown>[]>(sql, params);
  return Number(Object.values(rows[0]!)[0]);
}

/** How many `deletion_request` rows are in each state, e.g. `{ completed: 3 }`. */
export async function requestStates(app: DeletionTestApp): Promise<Record<string, number>> {
  const rows = await app
    .em()
    .getConnection()
    .execute<{ state: string; n: string }[]>(`select state, count(*) as n from deletion_request group by state order by state`);
  return Object.fromEntries(rows.map((row: { state: string; n: string }) => [row.state, Number(row.n)]));
}

/** Audit rows written by `ItemAuditSubscriber` (one per item deletion) and how many distinct items they name. */
export async function itemAudit(app: DeletionTestApp, where = 'true'): Promise<{ rows: number; distinct: number }> {
  const [row] = await app
    .em()
    .getConnection()
    .execute<{ rows: string; distinct: string }[]>(`select count(*) as rows, count(distinct item_id) as distinct from item_audit where ${where}`);
  return { rows: Number(row!.rows), distinct: Number(row!.distinct) };
}
