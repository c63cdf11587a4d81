import { BigIntType, helper, type EntityMetadata, type EntityProperty } from '@mikro-orm/core';
import { DeletionConfigurationError } from '../errors/deletion-configuration.error.js';
import { DeletionInvalidIdError } from '../errors/deletion-invalid-id.error.js';
import { propertyOf } from './metadata.js';

/** The key types the library can bind, compare and store: every shape MikroORM maps to them. */
export type KeyKind = 'integer' | 'bigint' | 'uuid' | 'string';

/** How a key is kept in a deletion request's JSON: numbers for integer columns, strings for the rest (bigint as decimal). */
export type JsonKey = number | string | JsonKey[];

/** One primary-key column: its property, its column and how its values are typed. */
export interface KeyColumn {
  readonly property: string;
  readonly field: string;
  readonly kind: KeyKind;
  /** The JS type MikroORM hydrates a bigint column as (`BigIntType`'s mode). */
  readonly js: 'number' | 'bigint' | 'string';
  readonly prop: EntityProperty;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INTEGER = /^-?\d+$/;
const INT4 = { min: -2147483648, max: 2147483647 };
const INT8 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };

const INTEGER_COLUMNS = new Set(['int', 'integer', 'int4', 'int2', 'smallint', 'serial', 'serial4', 'smallserial', 'serial2']);
const BIGINT_COLUMNS = new Set(['bigint', 'int8', 'bigserial', 'serial8']);
// Not char(n): PostgreSQL pads its values, so the text a request stores would not compare equal.
const STRING_COLUMNS = /^(varchar|character varying|text|citext)\b/;

const byMeta = new WeakMap<EntityMetadata, EntityKeys>();

/**
 * The primary key of an entity as the library handles it: which columns, of which type; how a value
 * given by a caller is checked (ids are values, never filters), bound as a statement parameter, and
 * stored in and read back from a request's JSON without loss. Built from MikroORM's metadata, once.
 */
export class EntityKeys {
  private constructor(
    readonly entity: string,
    readonly columns: readonly KeyColumn[],
  ) {}

  /**
   * The keys of `meta`. A key type the library cannot compare and store safely fails with
   * `DELETION_CONFIG_KEY_TYPE`, naming the entity and the supported types.
   */
  static of(meta: EntityMetadata): EntityKeys {
    let keys = byMeta.get(meta);
    if (!keys) {
      keys = new EntityKeys(
        meta.className,
        meta.primaryKeys.map((name) => keyColumn(meta, propertyOf(meta, name)!)),
      );
      byMeta.set(meta, keys);
    }
    return keys;
  }

  get composite(): boolean {
    return this.columns.length > 1;
  }

  /**
   * Checks a caller's id and returns it as MikroORM hydrates it (a `bigint` for a bigint key mapped
   * to `bigint`, a lower-case uuid, …). For a composite key, an array of the components in
   * primary-key order. Anything else throws `DeletionInvalidIdError` (HTTP 400).
   */
  parse(id: unknown): unknown {
    if (this.composite) {
      if (!Array.isArray(id) || id.length !== this.columns.length) {
        throw DeletionInvalidIdError.create(this.entity, id, `an array of ${this.columns.length} values (${this.columns.map((c) => c.property).join(', ')})`);
      }
      return this.columns.map((column, i) => this.parseColumn(column, id[i], id));
    }
    return this.parseColumn(this.columns[0]!, id, id);
  }

  /** The key as stored in a request's JSON (`JSON.stringify` never meets a bigint). */
  toJson(key: unknown): JsonKey {
    if (this.composite) {
      return this.columns.map((column, i) => columnToJson(column, (key as unknown[])[i]));
    }
    return columnToJson(this.columns[0]!, key);
  }

  /** A key read back from a request's JSON (or a column's text), typed as MikroORM hydrates it. */
  fromJson(value: unknown): unknown {
    if (this.composite) {
      return this.columns.map((column, i) => columnFromJson(column, (value as unknown[])[i]));
    }
    return columnFromJson(this.columns[0]!, value);
  }

  /** The statement parameters of one key, one per column, converted as MikroORM binds them. */
  bind(key: unknown): unknown[] {
    if (this.composite) {
      return this.columns.map((column, i) => bindColumn(column, (key as unknown[])[i]));
    }
    return [bindColumn(this.columns[0]!, key)];
  }

  /** The key of a loaded entity, as `parse` returns keys (an array for a composite key). */
  ofEntity(entity: object): unknown {
    const keys = helper(entity).getPrimaryKeys() ?? [];
    return this.composite ? [...keys] : keys[0];
  }

  /** A key from a row a hand-written statement returned, its columns aliased `alias0`, `alias1`, … */
  fromRow(row: Record<string, unknown>, alias: string): unknown {
    const values = this.columns.map((column, i) => columnFromJson(column, row[`${alias}${i}`]));
    return this.composite ? values : values[0];
  }

  private parseColumn(column: KeyColumn, value: unknown, whole: unknown): unknown {
    const invalid = () => DeletionInvalidIdError.create(this.entity, whole, expectation(column));
    switch (column.kind) {
      case 'uuid':
        if (typeof value !== 'string' || !UUID.test(value)) {
          throw invalid();
        }
        return value.toLowerCase();
      case 'string':
        // PostgreSQL text cannot hold a NUL character: no row has such a key.
        if (typeof value !== 'string' || value.includes('\u0000')) {
          throw invalid();
        }
        return value;
      case 'integer': {
        const n = integerOf(value);
        if (n === undefined || n < BigInt(INT4.min) || n > BigInt(INT4.max)) {
          throw invalid();
        }
        return Number(n);
      }
      case 'bigint': {
        const n = integerOf(value);
        if (n === undefined || n < INT8.min || n > INT8.max || (column.js === 'number' && !Number.isSafeInteger(Number(n)))) {
          throw invalid();
        }
        return column.js === 'bigint' ? n : column.js === 'number' ? Number(n) : n.toString();
      }
    }
  }
}

function keyColumn(meta: EntityMetadata, prop: EntityProperty): KeyColumn {
  // A key component that is a many-to-one takes the type of the key it references.
  const target = prop.kind === 'm:1' || prop.kind === '1:1' ? prop.targetMeta : undefined;
  if (target && target.primaryKeys.length === 1 && prop.fieldNames.length === 1) {
    const referenced = keyColumn(target, propertyOf(target, target.primaryKeys[0]!)!);
    return { ...referenced, property: prop.name, field: prop.fieldNames[0]!, prop };
  }
  const base = { property: prop.name, field: prop.fieldNames[0]!, prop };
  const column = String(prop.columnTypes?.[0] ?? prop.type ?? '').toLowerCase().trim();
  if (prop.customType instanceof BigIntType) {
    return { ...base, kind: 'bigint', js: prop.customType.mode ?? 'bigint' };
  }
  if (prop.customType === undefined && prop.fieldNames.length === 1) {
    if (column === 'uuid' && prop.runtimeType === 'string') {
      return { ...base, kind: 'uuid', js: 'string' };
    }
    if (INTEGER_COLUMNS.has(column) && prop.runtimeType === 'number') {
      return { ...base, kind: 'integer', js: 'number' };
    }
    if (BIGINT_COLUMNS.has(column) && (prop.runtimeType === 'number' || prop.runtimeType === 'string' || prop.runtimeType === 'bigint')) {
      return { ...base, kind: 'bigint', js: prop.runtimeType as KeyColumn['js'] };
    }
    if (STRING_COLUMNS.test(column) && prop.runtimeType === 'string') {
      return { ...base, kind: 'string', js: 'string' };
    }
  }
  throw DeletionConfigurationError.create(
    'DELETION_CONFIG_KEY_TYPE',
    { entity: meta.className },
    `its primary key ${meta.className}.${prop.name} (column type "${column || 'unknown'}") is of a type deletions cannot bind, compare and store safely.`,
    'use an integer, bigint (as bigint, number or string), uuid or varchar/text primary key (not char(n)), or declare no deletion policy or validator on this entity.',
  );
}

function expectation(column: KeyColumn): string {
  switch (column.kind) {
    case 'uuid':
      return `a uuid for ${column.property}`;
    case 'string':
      return `a string for ${column.property}`;
    case 'integer':
      return `an integer for ${column.property}`;
    case 'bigint':
      return column.js === 'number' ? `a safe integer for ${column.property}` : `a 64-bit integer (bigint or decimal string) for ${column.property}`;
  }
}

/** An integer given as a number, a bigint or a decimal string; `undefined` for anything else. */
function integerOf(value: unknown): bigint | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  }
  if (typeof value === 'bigint') {
    return value;
  }
  if (typeof value === 'string' && INTEGER.test(value) && value.length <= 20) {
    return BigInt(value);
  }
  return undefined;
}

function columnToJson(column: KeyColumn, value: unknown): JsonKey {
  switch (column.kind) {
    case 'integer':
      return Number(value);
    case 'bigint':
      // Always a decimal string, however MikroORM maps the column: one JSON form per column type.
      return String(value);
    case 'uuid':
      return String(value).toLowerCase();
    case 'string':
      return String(value);
  }
}

function columnFromJson(column: KeyColumn, value: unknown): unknown {
  switch (column.kind) {
    case 'integer':
      return Number(value);
    case 'bigint':
      return column.js === 'bigint' ? BigInt(String(value)) : column.js === 'number' ? safeNumber(column, value) : String(value);
    case 'uuid':
    case 'string':
      return String(value);
  }
}

/**
 * A bigint column mapped to a JavaScript number, read back: a value past 2^53 would come back as
 * another key (rounded), so every statement keyed on it could touch the wrong row. Refused.
 */
function safeNumber(column: KeyColumn, value: unknown): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || String(n) !== String(value)) {
    throw new Error(
      `The key ${column.property} holds ${String(value)}, which a JavaScript number cannot represent exactly (it is mapped to number): ` +
        `map the bigint column as bigint or string (new BigIntType('bigint') or new BigIntType('string')).`,
    );
  }
  return n;
}

function bindColumn(column: KeyColumn, value: unknown): unknown {
  return column.kind === 'bigint' ? String(value) : value;
}

/**
 * A caller's id for `meta` (`destroy()`, `plan()`), checked and typed as the key's codec says, and
 * its JSON form. An entity without policies may have a key type the codec does not handle (a date):
 * MikroORM handles its deletion alone, so its id only has to be a value, never a filter.
 */
export function callerKey(meta: EntityMetadata, id: unknown): { key: unknown; json: unknown } {
  let keys: EntityKeys | undefined;
  try {
    keys = EntityKeys.of(meta);
  } catch {
    keys = undefined;
  }
  if (keys) {
    const key = keys.parse(id);
    return { key, json: keys.toJson(key) };
  }
  const value = typeof id === 'string' || typeof id === 'bigint' || (typeof id === 'number' && Number.isFinite(id)) || id instanceof Date;
  if (!value || id === '') {
    throw DeletionInvalidIdError.create(meta.className, id, 'a value of its primary key');
  }
  return { key: id, json: typeof id === 'bigint' ? id.toString() : id };
}
