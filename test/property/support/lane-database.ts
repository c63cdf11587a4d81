import pg from 'pg';
import { LEVELS, type Lane, type Level } from '../fixtures/node-lanes.js';
import { sortRows, type Row } from '../model.js';

/** A row as the database holds it, with L0's tombstone column (and `hidden` where the lane has that column). */
export interface StoredRow extends Row {
  readonly tombstoned: boolean;
}

/** A fixed tombstone for rows a case starts with already marked (their queued deletion still to come). */
const MARKED_AT = '2026-01-01T00:00:00Z';

/**
 * Direct SQL on the property tests' database, outside MikroORM and the module: clearing a lane,
 * inserting a case's rows, and dumping a lane whole. Plain statements in one round trip each (the
 * simple query protocol takes several statements). Every table and column is written as the lane
 * spells it (schema-qualified, quoted), every key as a quoted literal of its text, which PostgreSQL
 * casts to the column's type; a dump reads keys back as text and maps them to the model's ids.
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
    const tables = [...lanes.flatMap((lane) => LEVELS.map((level) => lane.sql.tables[level])), 'deletion_orphan', 'deletion_request'];
    await this.client.query(tables.map((table) => `delete from ${table};`).join('\n'));
  }

  /**
   * Inserts the rows: `hidden` where the lane has that column, and L0 rows `marked` with a
   * tombstone (a row hidden or marked on a lane without the column or the tombstone is refused).
   */
  async insert(lane: Lane, rows: readonly Row[]): Promise<void> {
    const { id, parent, tag, blocked, hidden, deletedAt } = lane.sql.columns;
    const key = (modelId: number) => this.client.escapeLiteral(lane.keys.text(modelId));
    const statements: string[] = [];
    for (const level of LEVELS) {
      const root = level === 'l0';
      const hides = lane.hiddenLevels.includes(level);
      const atLevel = rows.filter((r) => r.level === level);
      const strange = atLevel.find((r) => (r.hidden && !hides) || (r.marked && !root));
      if (strange) {
        throw new Error(`lane ${lane.index} cannot hold ${JSON.stringify(strange)}`);
      }
      const marks = atLevel.some((r) => r.marked);
      const values = atLevel.map(
        (r) =>
          `(${key(r.id)}, ${root ? '' : `${r.parent === null ? 'null' : key(r.parent)}, `}${int(r.tag)}, ${r.blocked ? 'true' : 'false'}` +
          `${hides ? `, ${r.hidden ? 'true' : 'false'}` : ''}${marks ? `, ${r.marked ? `'${MARKED_AT}'` : 'null'}` : ''})`,
      );
      if (values.length > 0) {
        const columns = [id, ...(root ? [] : [parent]), tag, blocked, ...(hides ? [hidden] : []), ...(marks ? [deletedAt] : [])];
        statements.push(`insert into ${lane.sql.tables[level]} (${columns.join(', ')}) values ${values.join(', ')};`);
      }
    }
    if (statements.length > 0) {
      await this.client.query(statements.join('\n'));
    }
  }

  /**
   * Every row of the lane, in level and model-id order. A key that is no key of the lane (a row the
   * library re-keyed, or a foreign key set to another value than null or a parent's key) fails the dump.
   */
  async dump(lane: Lane): Promise<StoredRow[]> {
    const { id, parent, tag, blocked, deletedAt, hidden } = lane.sql.columns;
    const parts = LEVELS.map((level) => {
      const parentKey = level === 'l0' ? 'null::text' : `${parent}::text`;
      const tombstone = level === 'l0' ? `${deletedAt} is not null` : 'false';
      const hides = lane.hiddenLevels.includes(level) ? hidden : 'false';
      return (
        `select '${level}' as level, ${id}::text as id, ${parentKey} as parent, ${tag} as tag, ${blocked} as blocked, ${hides} as hidden, ` +
        `${tombstone} as tombstoned from ${lane.sql.tables[level]}`
      );
    });
    const { rows } = await this.client.query<{ level: Level; id: string; parent: string | null; tag: number; blocked: boolean; hidden: boolean; tombstoned: boolean }>(
      parts.join(' union all '),
    );
    const idOf = (text: string, what: string) => {
      const modelId = lane.keys.idOf(text);
      if (modelId === undefined) {
        throw new Error(`lane ${lane.index} holds ${what} ${JSON.stringify(text)}, which is no key of this lane (${lane.keys.label})`);
      }
      return modelId;
    };
    return sortRows(
      rows.map(({ level, id: key, parent: parentKey, tag: t, blocked: b, hidden: h, tombstoned }): StoredRow => ({
        level,
        id: idOf(key, `a ${level} row keyed`),
        parent: parentKey === null ? null : idOf(parentKey, `a ${level} row whose parent is`),
        tag: t,
        blocked: b,
        ...(h ? { hidden: true } : {}),
        tombstoned,
      })),
    );
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
