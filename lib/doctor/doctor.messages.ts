import type { PolicyName } from '../policies/policy-names.js';
import type { ForeignKeyFacts, TableFacts } from './schema-inspector.js';

/** The relation a finding is about, with the names its message and fix quote. */
export interface RelationSubject {
  readonly entity: string;
  readonly relation: string;
  readonly policy: PolicyName;
  readonly parent: string;
  readonly child: string;
  /** The child's many-to-one (or owning one-to-one) property. */
  readonly childProperty: string;
  /** The child's table as a user types it. */
  readonly table: string;
  /** The foreign-key column(s). */
  readonly columns: readonly string[];
}

interface Text {
  message: string;
  fix: string;
}

const at = (s: RelationSubject) => `${s.entity}.${s.relation}`;

/**
 * `a Book`, `an Organization`, `a User`: the indefinite article by the name's first sound (a vowel
 * letter, except where it is said as a consonant: "u" in User or Unit, "eu", "one").
 */
export function article(name: string): string {
  const vowelSound = /^[aeiou]/i.test(name) && !/^(u[bcdfgjklmnprstvz][aeiouy]|eu|one)/i.test(name);
  return `${vowelSound ? 'an' : 'a'} ${name}`;
}
const fkColumn = (s: RelationSubject) => (s.columns.length === 1 ? `${s.table}.${s.columns[0]}` : `${s.table} (${s.columns.join(', ')})`);
const tombstone = (s: RelationSubject) => `tombstone mode: definePolicy(${s.parent}, {...}, { tombstone: 'deletedAt' }) with a nullable datetime deletedAt on ${s.parent}`;

const CONSEQUENCES: Record<ForeignKeyFacts['onDelete'], (s: RelationSubject) => string> = {
  cascade: (s) =>
    s.policy === 'destroyAsync'
      ? `PostgreSQL deletes the ${s.child} rows together with the ${s.parent}, in the request and without their hooks or their own policies, so "destroyAsync" finds nothing left to destroy`
      : `PostgreSQL deletes the ${s.child} rows together with the ${s.parent}, inside the request's transaction, so the request pays for the whole cascade and "deleteAllAsync" finds nothing left to delete`,
  'set null': (s) =>
    `when ${article(s.parent)} is deleted PostgreSQL sets ${fkColumn(s)} to NULL (MikroORM 7's default for a nullable relation), so the queue finds no children and the ${s.child} rows stay behind as orphans instead of being deleted`,
  'set default': (s) => `when ${article(s.parent)} is deleted PostgreSQL sets ${fkColumn(s)} to its default, so the queue finds no children and the ${s.child} rows stay, attached to another row`,
  'no action': (s) => `the ${s.child} rows are deleted after the ${s.parent}, in the queue, so deleting ${article(s.parent)} that still has ${s.relation} fails with a foreign-key violation`,
  restrict: (s) => CONSEQUENCES['no action'](s),
};

/** An async policy over a foreign key that acts when the parent row is deleted. */
export function foreignKeyMessage(s: RelationSubject, fk: ForeignKeyFacts, table: TableFacts, currentSchema: string): Text {
  const message = `${at(s)} uses "${s.policy}", but the foreign key ${fk.name} on ${fkColumn(s)} is ON DELETE ${fk.onDelete.toUpperCase()}: ${CONSEQUENCES[fk.onDelete](s)}.`;
  const drop = `ALTER TABLE ${qualified(table, currentSchema)} DROP CONSTRAINT ${sqlIdentifier(fk.name)}`;
  const noConstraint = `set createForeignKeyConstraint: false on ${s.child}.${s.childProperty}, keep ${fkColumn(s)} indexed and drop the constraint (${drop})`;
  const fix =
    fk.onDelete === 'no action' || fk.onDelete === 'restrict'
      ? `keep the constraint and use ${tombstone(s)}, so the ${s.parent} row is deleted after its children; or ${noConstraint}.`
      : `${noConstraint}; or use ${tombstone(s)}, so the children are deleted before the ${s.parent} row.`;
  return { message, fix };
}

/** `destroy` over children in tombstone mode that keep the parent's DELETE from passing. */
export function tombstoneUnderDestroyMessage(s: RelationSubject, fk: ForeignKeyFacts): Text {
  return {
    message:
      `${at(s)} uses "destroy" over ${s.child}, which is in tombstone mode: a deleted ${s.child} is only marked until its queued work is done, ` +
      `but the ${s.parent} is deleted in the request, and the foreign key ${fk.name} on ${fkColumn(s)}, NOT NULL, makes that DELETE fail.`,
    fix: `make ${s.child}.${s.childProperty} nullable (marked ${s.child} rows are then detached from the deleted ${s.parent}), or put ${s.parent} in ${tombstone(s)} too.`,
  };
}

/** A queued set-based delete over children that rows below them still reference through a blocking constraint. */
export function setBasedBlockedMessage(s: RelationSubject, below: RelationSubject, fk: ForeignKeyFacts): Text {
  return {
    message:
      `${at(s)} uses "deleteAllAsync", one set-based DELETE of the ${s.child} rows in the queue, but ${fkColumn(below)} references them through ` +
      `the foreign key ${fk.name} (ON DELETE ${fk.onDelete.toUpperCase()}): a ${s.child} that still has ${below.relation} makes that DELETE fail after the request was accepted.`,
    fix: `use "destroyAsync" for ${at(s)}, so each ${s.child}'s own policies run first.`,
  };
}

/** `nullify`/`nullifyThenPurge` over a column the database holds NOT NULL. */
export function notNullMessage(s: RelationSubject, notNull: readonly string[], table: TableFacts, currentSchema: string): Text {
  const alternative = s.policy === 'nullify' ? '"destroy" or "deleteAll"' : '"destroyAsync"';
  const alter = `ALTER TABLE ${qualified(table, currentSchema)} ${notNull.map((c) => `ALTER COLUMN ${sqlIdentifier(c)} DROP NOT NULL`).join(', ')}`;
  return {
    message:
      `${at(s)} uses "${s.policy}", which sets ${fkColumn(s)} to NULL, but the database holds ${notNull.join(', ')} NOT NULL ` +
      `(${s.child}.${s.childProperty} is nullable in the entity: the schema lags behind it), so deleting ${article(s.parent)} that has ${s.relation} would fail.`,
    fix: `${alter} (apply the pending migration), or choose ${alternative} for ${at(s)}.`,
  };
}

/** No index serves the lookup of a parent's children. */
export function unindexedMessage(s: RelationSubject, table: TableFacts, currentSchema: string, constraint: string | undefined): Text {
  const those = s.columns.length === 1 ? 'that column' : 'those columns';
  const unindexedKey = constraint ? ` (PostgreSQL does not index the columns of a foreign key such as ${constraint} by itself)` : '';
  const columns = s.columns.map(sqlIdentifier).join(', ');
  return {
    message: `${at(s)} finds its ${s.child} rows by ${fkColumn(s)}, but no index of ${s.table} starts with ${those}${unindexedKey}, so each ${s.parent} deletion scans the whole ${s.table} table.`,
    fix: `CREATE INDEX ON ${qualified(table, currentSchema)} (${columns}), or declare { index: true } on ${s.child}.${s.childProperty}.`,
  };
}

/** A set-based policy over children that declare what their own deletion does. */
export function skippedMessage(s: RelationSubject, skipped: readonly string[]): Text {
  const oneByOne = s.policy === 'deleteAll' ? 'destroy' : 'destroyAsync';
  return {
    message:
      `${at(s)} uses "${s.policy}", which deletes ${s.child} rows with set-based statements, so what ${s.child} declares for its own deletion ` +
      `(${skipped.join(', ')}) is skipped: its children are left behind, or block the delete through their foreign key.`,
    fix: `use "${oneByOne}" for ${at(s)}, so each ${s.child} is deleted through its own policies; or remove ${s.child}'s policies if nothing depends on them.`,
  };
}

/** A set-based validator that no partial index on the foreign key serves. */
export function unservedValidatorMessage(s: RelationSubject, table: TableFacts, currentSchema: string, predicates: readonly string[]): Text {
  const columns = s.columns.map(sqlIdentifier).join(', ');
  return {
    message:
      `${s.child} has a set-based @ValidateBeforeDestroy that ${at(s)} evaluates in every deletion, but no partial index of ${s.table} ` +
      `starts with ${fkColumn(s)}, so PostgreSQL reads every ${s.child} row of the deleted ${s.parent} to answer it.`,
    fix: predicates.map((predicate) => `CREATE INDEX ON ${qualified(table, currentSchema)} (${columns}) WHERE ${predicate}`).join('; ') + '.',
  };
}

/** The child's table or column is not in the database. */
export function missingMessage(s: RelationSubject, what: 'table' | 'column'): Text {
  return what === 'table'
    ? {
        message: `${at(s)}: the table ${s.table} of ${s.child} does not exist, so the doctor could not check its foreign key.`,
        fix: `create the schema before the application starts (run the migrations), or check ${s.child}'s tableName and schema.`,
      }
    : {
        message: `${at(s)}: ${s.table} has no column ${s.columns.join(', ')} for ${s.child}.${s.childProperty}, so the doctor could not check its foreign key.`,
        fix: `apply the pending migration that adds ${fkColumn(s)}.`,
      };
}

/** The table for SQL: schema-qualified only off the current schema, quoted where needed. */
function qualified(table: Pick<TableFacts, 'schema' | 'table'>, currentSchema: string): string {
  return table.schema === currentSchema ? sqlIdentifier(table.table) : `${sqlIdentifier(table.schema)}.${sqlIdentifier(table.table)}`;
}

/** PostgreSQL's reserved key words: an identifier spelled like one must be quoted. */
const RESERVED = new Set(
  (
    'all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation column concurrently constraint create ' +
    'cross current_catalog current_date current_role current_schema current_time current_timestamp current_user default deferrable desc distinct do else ' +
    'end except false fetch for foreign freeze from full grant group having ilike in initially inner intersect into is isnull join lateral leading left ' +
    'like limit localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references returning right select ' +
    'session_user similar some symmetric system_user table tablesample then to trailing true union unique user using variadic verbose when where window with'
  ).split(' '),
);

function sqlIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) && !RESERVED.has(name) ? name : `"${name.replaceAll('"', '""')}"`;
}
