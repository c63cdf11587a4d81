import pg from 'pg';
import { sortRows, type Row, type Table } from '../deep-model.js';

/** A row as the database holds it, with its tombstone column. */
export interface StoredRow extends Row {
  readonly tombstoned: boolean;
}

/** Where a lane keeps the rows of one model table. */
export interface TableSpec {
  readonly table: Table;
  /** The SQL table name (plain, unquoted: `deep3_node`). */
  readonly name: string;
  readonly hasParent: boolean;
  readonly hasHeld: boolean;
}

/**
 * Direct SQL on a property test's database, outside MikroORM and the module: clearing tables,
 * inserting a case's rows (children after their parents, as a NO ACTION constraint wants), dumping
 * tables whole, and reading the module's own tables. One round trip per call.
 */
export class DeepDatabase {
  private constructor(readonly client: pg.Client) {}

  static async connect(url: string): Promise<DeepDatabase> {
    const client = new pg.Client({ connectionString: url });
    // A dropped connection fails the next query; without a listener it would crash the test process.
    client.on('error', () => undefined);
    await client.connect();
    return new DeepDatabase(client);
  }

  close(): Promise<void> {
    return this.client.end();
  }

  /** Empties the tables (kids before parents) and the module's request tables. */
  async clear(tables: readonly TableSpec[]): Promise<void> {
    const names = [...new Set([...tables].sort((a, b) => Number(b.table === 'kid') - Number(a.table === 'kid')).map((t) => t.name))];
    await this.client.query([...names, 'deletion_orphan', 'deletion_request'].map((name) => `delete from ${name};`).join('\n'));
  }

  /** Inserts rows; a node's parent row is inserted before it (ids grow down a tree). */
  async insert(specs: readonly TableSpec[], rows: readonly Row[]): Promise<void> {
    const statements: string[] = [];
    for (const spec of specs) {
      const mine = orderForInsert(rows.filter((r) => r.table === spec.table));
      if (mine.length === 0) {
        continue;
      }
      const columns = ['id', ...(spec.hasParent ? ['parent_id'] : []), 'tag', 'blocked', ...(spec.hasHeld ? ['held'] : [])];
      const values = mine.map((r) =>
        [int(r.id), ...(spec.hasParent ? [r.parent === null ? 'null' : int(r.parent)] : []), int(r.tag), bool(r.blocked), ...(spec.hasHeld ? [bool(r.held)] : [])].join(', '),
      );
      statements.push(`insert into ${spec.name} (${columns.join(', ')}) values ${values.map((v) => `(${v})`).join(', ')};`);
    }
    if (statements.length > 0) {
      await this.client.query(statements.join('\n'));
    }
  }

  /** Every row of the tables, in table and id order. */
  async dump(specs: readonly TableSpec[]): Promise<StoredRow[]> {
    const parts = specs.map(
      (spec) =>
        `select '${spec.table}' as tbl, id, ${spec.hasParent ? 'parent_id' : 'null::int'} as parent, tag, blocked, ${spec.hasHeld ? 'held' : 'false'} as held, deleted_at is not null as tombstoned from ${spec.name}`,
    );
    const { rows } = await this.client.query<{ tbl: Table; id: number; parent: number | null; tag: number; blocked: boolean; held: boolean; tombstoned: boolean }>(parts.join(' union all '));
    return sortRows(rows.map(({ tbl, id, parent, tag, blocked, held, tombstoned }) => ({ table: tbl, id, parent, tag, blocked, held, tombstoned })));
  }

  /** Rows of the module's own tables: requests by state, and recorded orphans. */
  async bookkeeping(): Promise<{ requests: Record<string, number>; orphans: number }> {
    const { rows } = await this.client.query<{ state: string | null; n: string; orphans: string }>(
      `select r.state, count(r.*) as n, (select count(*) from deletion_orphan) as orphans from deletion_request r group by r.state
       union all select null, 0, (select count(*) from deletion_orphan) order by 1`,
    );
    const requests = Object.fromEntries(rows.filter((r) => r.state !== null).map((r) => [r.state!, Number(r.n)]));
    return { requests, orphans: Number(rows[0]!.orphans) };
  }

  /** How many deletion requests exist (all states). */
  async requestCount(): Promise<number> {
    const { rows } = await this.client.query<{ n: string }>(`select count(*) as n from deletion_request`);
    return Number(rows[0]!.n);
  }
}

/** Parents before children, whatever the ids (a row whose parent is absent goes first). */
function orderForInsert(rows: readonly Row[]): Row[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const depth = new Map<number, number>();
  const depthOf = (r: Row, seen = 0): number => {
    const known = depth.get(r.id);
    if (known !== undefined) {
      return known;
    }
    const parent = r.parent === null ? undefined : byId.get(r.parent);
    const d = parent && seen < rows.length ? depthOf(parent, seen + 1) + 1 : 0;
    depth.set(r.id, d);
    return d;
  };
  return [...rows].sort((a, b) => depthOf(a) - depthOf(b) || a.id - b.id);
}

const bool = (value: boolean) => (value ? 'true' : 'false');

function int(value: number): string {
  if (!Number.isSafeInteger(value)) {
    throw new Error(`not an integer: ${value}`);
  }
  return String(value);
}
