import type { EntityManager, EntityMetadata, MetadataStorage } from '@mikro-orm/core';
import { EntityKeys } from './entity-keys.js';
import { propertyOf } from './metadata.js';

/** A PostgreSQL identifier, quoted whatever it holds (mixed case, reserved words, dots, quotes). */
export function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** A constant as an SQL literal (discriminator values come from the metadata, never from callers). */
export function literal(value: string | number): string {
  return typeof value === 'number' ? String(value) : `'${value.replaceAll("'", "''")}'`;
}

/**
 * The schema MikroORM's query builder puts in front of an entity's table: the entity's own
 * `schema`, then the entity manager's, then the ORM's `schema` option; none for the platform's
 * default schema (the table is then found through the `search_path`, as MikroORM's queries find it).
 */
export function schemaOf(em: EntityManager, meta: EntityMetadata, override?: string): string | undefined {
  const own = meta.schema && meta.schema !== '*' ? meta.schema : undefined;
  const schema = override ?? own ?? em.schema ?? em.config.getSchema(true);
  return schema === em.getPlatform().getDefaultSchemaName() ? undefined : schema;
}

/**
 * An entity's table, columns, key and single-table-inheritance condition, resolved from MikroORM's
 * metadata as its own queries resolve them. Every statement the library writes by hand names rows
 * through one of these.
 */
export class EntityTable {

  private readonly discriminated: readonly (string | number)[] | undefined;

  constructor(
    readonly meta: EntityMetadata,
    private readonly schema: string | undefined,
    metadata: MetadataStorage,
  ) {
    this.discriminated = discriminatorValues(meta, metadata);
  }

  /** The entity's primary key (checked when first asked: pivot and bookkeeping tables need none). */
  get keys(): EntityKeys {
    return EntityKeys.of(this.meta);
  }

  /** `schema`: a change set's own schema, when MikroORM gave it one. */
  static of(em: EntityManager, meta: EntityMetadata, schema?: string): EntityTable {
    return new EntityTable(meta, schemaOf(em, meta, schema), em.getMetadata());
  }

  /** `"schema"."table"`, or `"table"` in the default schema. */
  get name(): string {
    return this.schema ? `${quote(this.schema)}.${quote(this.meta.tableName)}` : quote(this.meta.tableName);
  }

  /** The table as `to_regclass()` takes it: what the doctor looks up in the catalogs. */
  get regclass(): string {
    return this.name;
  }

  /** The quoted column of a single-column property (a scalar, or a many-to-one to a single-key entity). */
  column(property: string, alias?: string): string {
    const prop = propertyOf(this.meta, property);
    if (!prop || prop.fieldNames.length !== 1) {
      throw new Error(`${this.meta.className}.${property} is not a single-column property.`);
    }
    return qualify(alias, prop.fieldNames[0]!);
  }

  /** The primary-key columns, quoted, in key order. */
  keyColumns(alias?: string): string[] {
    return this.keys.columns.map((column) => qualify(alias, column.field));
  }

  /** `"id"` or `("a", "b")`: the key as one SQL expression. */
  keyExpression(alias?: string): string {
    const columns = this.keyColumns(alias);
    return columns.length === 1 ? columns[0]! : `(${columns.join(', ')})`;
  }

  /** The key columns selected as `alias0`, `alias1`, … for `EntityKeys.fromRow`. */
  selectKey(alias: string | undefined, as: string): string {
    return this.keyColumns(alias)
      .map((column, i) => `${column} as ${quote(`${as}${i}`)}`)
      .join(', ');
  }

  /** `key in (...)` over these keys, with their parameters. An empty list is `false`. */
  keyIn(keys: readonly unknown[], alias?: string): { sql: string; params: unknown[] } {
    return this.keysAt(this.keyExpression(alias), keys);
  }

  /**
   * `expression in (...)` over keys of this entity (`expression`: its key columns, or a foreign key
   * that references them), one placeholder per column per key, bound as MikroORM binds them.
   */
  keysAt(expression: string, keys: readonly unknown[]): { sql: string; params: unknown[] } {
    if (keys.length === 0) {
      return { sql: 'false', params: [] };
    }
    const width = this.keys.columns.length;
    const tuple = width === 1 ? '?' : `(${Array.from({ length: width }, () => '?').join(', ')})`;
    return {
      sql: `${expression} in (${keys.map(() => tuple).join(', ')})`,
      params: keys.flatMap((key) => this.keys.bind(key)),
    };
  }

  /**
   * The single-table-inheritance condition that keeps a statement on this entity's rows (its
   * discriminator value and its subclasses'), as MikroORM's query builder adds it; `undefined` for
   * an inheritance root or an entity without inheritance (every row of the table is one of its).
   */
  discriminator(alias?: string): string | undefined {
    const values = this.discriminated;
    if (!values) {
      return undefined;
    }
    if (values.length === 0) {
      return 'false';
    }
    const root = this.meta.root;
    const prop = propertyOf(root, root.discriminatorColumn!)!;
    return `${qualify(alias, prop.fieldNames[0]!)} in (${values.map(literal).join(', ')})`;
  }

  /** `and <discriminator>`, or nothing. */
  andDiscriminator(alias?: string): string {
    const condition = this.discriminator(alias);
    return condition ? ` and ${condition}` : '';
  }
}

function qualify(alias: string | undefined, field: string): string {
  return alias ? `${alias}.${quote(field)}` : quote(field);
}

/**
 * The discriminator values of `meta` and of every entity that extends it, or `undefined` when its
 * rows are all of the table's rows (no single-table inheritance, or its root).
 */
export function discriminatorValues(meta: EntityMetadata, metadata: MetadataStorage): (string | number)[] | undefined {
  const root = meta.root;
  if (root.inheritanceType !== 'sti' || meta.class === root.class) {
    return undefined;
  }
  // A class with no value of its own (a plain class between two entities) has the rows of those below it.
  return [...metadata.getAll().values()]
    .filter((m) => m.root.class === root.class && m.discriminatorValue !== undefined && isSameOrSubclass(m.class, meta.class))
    .map((m) => m.discriminatorValue!);
}

/** Whether `cls` is `base` or extends it. */
export function isSameOrSubclass(cls: unknown, base: unknown): boolean {
  return cls === base || (typeof cls === 'function' && typeof base === 'function' && cls.prototype instanceof base);
}
