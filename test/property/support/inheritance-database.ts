import pg from 'pg';
import { TABLES, type InheritanceLane, type Kind, type Table } from '../fixtures/inheritance-lanes.js';
import { sortRows, type Row } from '../inheritance-model.js';

/** A row as the database holds it, with Kennel's tombstone column. */
export interface StoredRow extends Row {
  readonly tombstoned: boolean;
}

/**
 * Direct SQL on the inheritance property tests' database, outside MikroORM and the module: clearing
 * lanes, inserting a case's rows, and dumping a lane whole. Every value is a number, a boolean or a
 * discriminator literal, so the statements go in one round trip each.
 */
export class InheritanceDatabase {
  private constructor(private readonly client: pg.Client) {}

  static async connect(url: string): Promise<InheritanceDatabase> {
    const client = new pg.Client({ connectionString: url });
    // A dropped connection fails the next query; without a listener it would crash the test process.
    client.on('error', () => undefined);
    await client.connect();
    return new InheritanceDatabase(client);
  }

  close(): Promise<void> {
    return this.client.end();
  }

  /** Empties the lanes' tables and the module's request tables. */
  async clear(lanes: readonly InheritanceLane[]): Promise<void> {
    const tables = [...lanes.flatMap((lane) => tablesOf(lane).map((table) => lane.tables[table])), 'deletion_orphan', 'deletion_request'];
    await this.client.query(tables.map((table) => `delete from ${table};`).join('\n'));
  }

  async insert(lane: InheritanceLane, rows: readonly Row[]): Promise<void> {
    const statements: string[] = [];
    for (const table of tablesOf(lane)) {
      const values = rows.filter((r) => r.table === table).map((r) => `(${COLUMNS[table].values(r).join(', ')})`);
      if (values.length > 0) {
        statements.push(`insert into ${lane.tables[table]} (${COLUMNS[table].names.join(', ')}) values ${values.join(', ')};`);
      }
    }
    if (statements.length > 0) {
      await this.client.query(statements.join('\n'));
    }
  }

  /** Every row of the lane, in table and key order. */
  async dump(lane: InheritanceLane): Promise<StoredRow[]> {
    const parts = tablesOf(lane).map((table) => `select '${table}' as tbl, ${COLUMNS[table].select} from ${lane.tables[table]}`);
    const { rows } = await this.client.query<{
      tbl: Table;
      id: number[];
      kind: Kind | null;
      parent: number | null;
      home: number | null;
      tag: number;
      blocked: boolean;
      held: boolean;
      tombstoned: boolean;
    }>(parts.join(' union all '));
    const stored = rows.map(({ tbl, id, kind, parent, home, tag, blocked, held, tombstoned }) => ({ table: tbl, id, kind, parent, home, tag, blocked, held, tombstoned }));
    return sortRows(stored) as StoredRow[];
  }

  /** Rows of the module's own tables: requests by state, and recorded orphans. */
  async bookkeeping(): Promise<{ requests: Record<string, number>; orphans: number }> {
    const requests = await this.client.query<{ state: string; n: string }>(`select state, count(*) as n from deletion_request group by state order by state`);
    const orphans = await this.client.query<{ n: string }>(`select count(*) as n from deletion_orphan`);
    return { requests: Object.fromEntries(requests.rows.map((r) => [r.state, Number(r.n)])), orphans: Number(orphans.rows[0]!.n) };
  }
}

function tablesOf(lane: InheritanceLane): Table[] {
  return TABLES.filter((t) => lane.shape.composite || (t !== 'slot' && t !== 'run'));
}

const bool = (value: boolean) => (value ? 'true' : 'false');
const nullableInt = (value: number | null) => (value === null ? 'null' : int(value));

/** Per table: the columns inserted, their values for a row, and the select list of a dump. */
const COLUMNS: Record<Table, { names: string[]; values: (row: Row) => string[]; select: string }> = {
  kennel: {
    names: ['id', 'tag', 'blocked'],
    values: (r) => [int(r.id[0]!), int(r.tag), bool(r.blocked)],
    select: 'array[id] as id, null as kind, null::int as parent, null::int as home, tag, blocked, false as held, deleted_at is not null as tombstoned',
  },
  animal: {
    names: ['id', 'type', 'kennel_id', 'home_id', 'tag', 'blocked', 'held'],
    values: (r) => [int(r.id[0]!), `'${kind(r.kind)}'`, nullableInt(r.parent), nullableInt(r.home), int(r.tag), bool(r.blocked), bool(r.held)],
    select: 'array[id] as id, type as kind, kennel_id as parent, home_id as home, tag, blocked, held, false as tombstoned',
  },
  toy: {
    names: ['id', 'animal_id', 'tag', 'blocked'],
    values: (r) => [int(r.id[0]!), nullableInt(r.parent), int(r.tag), bool(r.blocked)],
    select: 'array[id] as id, null as kind, animal_id as parent, null::int as home, tag, blocked, false as held, false as tombstoned',
  },
  bone: {
    names: ['id', 'dog_id', 'tag', 'blocked'],
    values: (r) => [int(r.id[0]!), nullableInt(r.parent), int(r.tag), bool(r.blocked)],
    select: 'array[id] as id, null as kind, dog_id as parent, null::int as home, tag, blocked, false as held, false as tombstoned',
  },
  slot: {
    names: ['a', 'b', 'kennel_id', 'tag', 'blocked'],
    values: (r) => [int(r.id[0]!), int(r.id[1]!), nullableInt(r.parent), int(r.tag), bool(r.blocked)],
    select: 'array[a, b] as id, null as kind, kennel_id as parent, null::int as home, tag, blocked, false as held, false as tombstoned',
  },
  run: {
    names: ['kennel_id', 'seq', 'tag', 'blocked', 'held'],
    values: (r) => [int(r.id[0]!), int(r.id[1]!), int(r.tag), bool(r.blocked), bool(r.held)],
    select: 'array[kennel_id, seq] as id, null as kind, kennel_id as parent, null::int as home, tag, blocked, held, false as tombstoned',
  },
};

function kind(value: Kind | null): Kind {
  if (value !== 'dog' && value !== 'puppy' && value !== 'cat') {
    throw new Error(`not an animal kind: ${String(value)}`);
  }
  return value;
}

function int(value: number): string {
  if (!Number.isSafeInteger(value)) {
    throw new Error(`not an integer: ${value}`);
  }
  return String(value);
}
