import pg from 'pg';
import { LEVELS, type Lane, type Level } from '../fixtures/node-lanes.js';
import type { Row } from '../model.js';

/** A row as the database holds it, with L0's tombstone column. */
export interface StoredRow extends Row {
  readonly tombstoned: boolean;
}

/**
 * Direct SQL on the property tests' database, outside MikroORM and the module: clearing a lane,
 * inserting a case's rows, and dumping a lane whole. Plain statements in one round trip each (the
 * simple query protocol takes several statements; every value is a number or a boolean).
 */
export class LaneDatabase {
  private constructor(private readonly client: pg.Client) {}

  static async connect(url: string): Promise<LaneDatabase> {
    const client = new pg.Client({ connectionString: url });
    // A dropped connection fails the next query; without a listener it would crash the test process.
    client.on('error', () => undefined);
    await client.connect();
    return new LaneDatabase(client);
  }

  close(): Promise<void> {
    return this.client.end();
  }

  /** Empties the lanes' tables and the module's request tables. */
  async clear(lanes: readonly Lane[]): Promise<void> {
    const tables = [...lanes.flatMap((lane) => LEVELS.map((level) => lane.tables[level])), 'deletion_orphan', 'deletion_request'];
    await this.client.query(tables.map((table) => `delete from ${table};`).join('\n'));
  }

  async insert(lane: Lane, rows: readonly Row[]): Promise<void> {
    const statements: string[] = [];
    for (const level of LEVELS) {
      const root = level === 'l0';
      const values = rows
        .filter((r) => r.level === level)
        .map((r) => `(${int(r.id)}, ${root ? '' : `${r.parent === null ? 'null' : int(r.parent)}, `}${int(r.tag)}, ${r.blocked ? 'true' : 'false'})`);
      if (values.length > 0) {
        statements.push(`insert into ${lane.tables[level]} (id, ${root ? '' : 'parent_id, '}tag, blocked) values ${values.join(', ')};`);
      }
    }
    if (statements.length > 0) {
      await this.client.query(statements.join('\n'));
    }
  }

  /** Every row of the lane, in level and id order. */
  async dump(lane: Lane): Promise<StoredRow[]> {
    const parts = LEVELS.map((level) => {
      const parent = level === 'l0' ? 'null::int' : 'parent_id';
      const tombstone = level === 'l0' ? 'deleted_at is not null' : 'false';
      return `select '${level}' as level, id, ${parent} as parent, tag, blocked, ${tombstone} as tombstoned, ${LEVELS.indexOf(level)} as ord from ${lane.tables[level]}`;
    });
    const { rows } = await this.client.query<{ level: Level; id: number; parent: number | null; tag: number; blocked: boolean; tombstoned: boolean }>(
      `${parts.join(' union all ')} order by ord, id`,
    );
    return rows.map(({ level, id, parent, tag, blocked, tombstoned }) => ({ level, id, parent, tag, blocked, tombstoned }));
  }

  /** Rows of the module's own tables: requests by state, and recorded orphans. */
  async bookkeeping(): Promise<{ requests: Record<string, number>; orphans: number }> {
    const requests = await this.client.query<{ state: string; n: string }>(`select state, count(*) as n from deletion_request group by state order by state`);
    const orphans = await this.client.query<{ n: string }>(`select count(*) as n from deletion_orphan`);
    return { requests: Object.fromEntries(requests.rows.map((r) => [r.state, Number(r.n)])), orphans: Number(orphans.rows[0]!.n) };
  }
}

function int(value: number): string {
  if (!Number.isSafeInteger(value)) {
    throw new Error(`not an integer: ${value}`);
  }
  return String(value);
}
