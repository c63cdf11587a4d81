import type { EntityMetadata } from '@mikro-orm/core';
import { semanticsOf } from '../policies/policy-semantics.js';
import { propertyOf } from '../sql/metadata.js';
import type { EntityPolicy, PolicyRegistry, RelationPolicy } from '../registry/policy-registry.js';
import { DOCTOR_CODES, type DoctorFinding } from './doctor-finding.js';
import {
  foreignKeyMessage,
  missingMessage,
  notNullMessage,
  setBasedBlockedMessage,
  skippedMessage,
  tombstoneUnderDestroyMessage,
  unindexedMessage,
  unservedValidatorMessage,
  type RelationSubject,
} from './doctor.messages.js';
import type { ForeignKeyFacts, SchemaFacts, TableFacts } from './schema-inspector.js';


/**
 * What else runs when a row of `meta` is destroyed one by one, described for a message (e.g.
 * `@BeforeDelete audit()`): lifecycle hooks, which a set-based delete skips. Validators are not
 * listed: the module evaluates them before set-based deletes too.
 */
export type OwnDeletionLogic = (meta: EntityMetadata) => readonly string[];

const none: OwnDeletionLogic = () => [];

/**
 * Compares every declared policy with the database's real schema (DESIGN 2.2 and 6), and returns
 * the conflicts: foreign keys that defeat or block queued policies, NOT NULL columns under
 * nullifying policies, foreign keys no index serves, and set-based policies that would skip the
 * children's own policies. Pure: `schema` holds what the database said.
 *
 * Many-to-many relations are left out: they only take `restrict` or pivot-row removal, whose
 * foreign keys sit on the pivot table MikroORM manages.
 */
export function diagnose(
  registry: PolicyRegistry,
  schema: SchemaFacts,
  ownDeletionLogic: OwnDeletionLogic = none,
  validatorPredicates: ValidatorPredicates = none,
): DoctorFinding[] {
  const findings: DoctorFinding[] = [];
  for (const relation of registry.relations()) {
    const owner = registry.forEntityName(relation.entity);
    if (relation.kind !== 'm:n' && owner) {
      findings.push(...diagnoseRelation(registry, owner, relation, schema, ownDeletionLogic, validatorPredicates));
    }
  }
  return findings;
}

/** The SQL predicates of an entity's set-based validators (`legal_hold = true`), for `CREATE INDEX`. */
export type ValidatorPredicates = (meta: EntityMetadata) => readonly string[];


function diagnoseRelation(
  registry: PolicyRegistry,
  owner: EntityPolicy,
  relation: RelationPolicy,
  schema: SchemaFacts,
  ownDeletionLogic: OwnDeletionLogic,
  validatorPredicates: ValidatorPredicates,
): DoctorFinding[] {
  const findings: DoctorFinding[] = [];
  const childProp = propertyOf(relation.childMeta, relation.childProperty)!;
  const table = schema.tables.get(relation.childMeta.className);
  const subject: RelationSubject = {
    entity: relation.entity,
    relation: relation.relation,
    policy: relation.policy,
    parent: relation.parentMeta.className,
    child: relation.childMeta.className,
    childProperty: relation.childProperty,
    table: table ? tableName(table, schema.currentSchema) : relation.childMeta.tableName,
    columns: childProp.fieldNames,
  };
  const finding = (severity: DoctorFinding['severity'], code: DoctorFinding['code'], text: { message: string; fix: string }, constraint?: string): DoctorFinding => ({
    severity,
    code,
    entity: subject.entity,
    relation: subject.relation,
    policy: subject.policy,
    ...(constraint === undefined ? {} : { constraint }),
    ...text,
  });

  const semantics = semanticsOf(relation.policy);
  // Set-based deletes skip the children's own policies and hooks (a set-based nullify deletes nothing).
  if (semantics.setBased && semantics.deletes) {
    const childPolicies = registry.forMeta(relation.childMeta)?.relations ?? [];
    const skipped = [...childPolicies.map((r) => `${r.relation}: "${r.policy}"`), ...ownDeletionLogic(relation.childMeta)];
    if (skipped.length > 0) {
      findings.push(finding('warning', DOCTOR_CODES.SKIPPED_POLICIES, skippedMessage(subject, skipped)));
    }
  }

  if (!table) {
    return [...findings, finding('warning', DOCTOR_CODES.TABLE_MISSING, missingMessage(subject, 'table'))];
  }
  const columns = subject.columns.map((name) => table.columns.find((column) => column.name === name));
  if (columns.some((column) => column === undefined)) {
    return [...findings, finding('warning', DOCTOR_CODES.COLUMN_MISSING, missingMessage(subject, 'column'))];
  }
  const constraints = table.foreignKeys.filter((fk) => sameColumns(fk.columns, subject.columns));

  // `nullifyThenPurge` detaches in the request, before the parent's DELETE: the constraint finds nothing to act on.
  if (semantics.deletedAfterParent && owner.tombstone === undefined) {
    for (const fk of constraints) {
      findings.push(finding('error', FK_CODES[fk.onDelete], foreignKeyMessage(subject, fk, table, schema.currentSchema), fk.name));
    }
  }
  if (semantics.setBased && semantics.deletes && semantics.queued) {
    findings.push(...blockedBelow(registry, relation, subject, schema, finding));
  }
  const notNull = columns.filter((column) => column!.notNull).map((column) => column!.name);
  if (semantics.recurses && !semantics.queued && relation.childTombstone !== undefined && owner.tombstone === undefined && notNull.length > 0) {
    for (const fk of constraints.filter((c) => c.onDelete === 'no action' || c.onDelete === 'restrict')) {
      findings.push(finding('error', DOCTOR_CODES.TOMBSTONE_UNDER_DESTROY, tombstoneUnderDestroyMessage(subject, fk), fk.name));
    }
  }
  if (semantics.detaches && notNull.length > 0) {
    findings.push(finding('error', DOCTOR_CODES.NOT_NULL, notNullMessage(subject, notNull, table, schema.currentSchema), constraints[0]?.name));
  }
  if (!isIndexed(table, subject.columns)) {
    const constraint = constraints[0]?.name;
    findings.push(finding('warning', DOCTOR_CODES.UNINDEXED_FK, unindexedMessage(subject, table, schema.currentSchema, constraint), constraint));
  }
  const predicates = semantics.deletes ? validatorPredicates(relation.childMeta) : [];
  if (predicates.length > 0 && !hasPartialIndex(table, subject.columns)) {
    findings.push(finding('warning', DOCTOR_CODES.UNSERVED_VALIDATOR, unservedValidatorMessage(subject, table, schema.currentSchema, predicates)));
  }
  return findings;
}

/**
 * The relations below a queued set-based delete whose foreign keys would stop it: a blocking
 * constraint from a grandchild table to the deleted children.
 */
function blockedBelow(
  registry: PolicyRegistry,
  relation: RelationPolicy,
  subject: RelationSubject,
  schema: SchemaFacts,
  finding: (severity: DoctorFinding['severity'], code: DoctorFinding['code'], text: { message: string; fix: string }, constraint?: string) => DoctorFinding,
): DoctorFinding[] {
  const findings: DoctorFinding[] = [];
  for (const below of registry.forMeta(relation.childMeta)?.relations ?? []) {
    const table = below.kind === 'm:n' ? undefined : schema.tables.get(below.childMeta.className);
    if (!table) {
      continue;
    }
    const columns = propertyOf(below.childMeta, below.childProperty)!.fieldNames;
    const belowSubject: RelationSubject = { ...subject, relation: below.relation, table: table.schema === schema.currentSchema ? table.table : `${table.schema}.${table.table}`, columns };
    for (const fk of table.foreignKeys.filter((k) => sameColumns(k.columns, columns) && (k.onDelete === 'no action' || k.onDelete === 'restrict'))) {
      findings.push(finding('error', DOCTOR_CODES.SET_BASED_BLOCKED, setBasedBlockedMessage(subject, belowSubject, fk), fk.name));
    }
  }
  return findings;
}

const FK_CODES: Record<ForeignKeyFacts['onDelete'], DoctorFinding['code']> = {
  cascade: DOCTOR_CODES.CASCADE_FK,
  'set null': DOCTOR_CODES.SET_NULL_FK,
  'set default': DOCTOR_CODES.SET_DEFAULT_FK,
  'no action': DOCTOR_CODES.BLOCKING_FK,
  restrict: DOCTOR_CODES.BLOCKING_FK,
};

/** Some valid, non-partial index whose leading key columns are exactly the foreign-key columns. */
function isIndexed(table: TableFacts, columns: readonly string[]): boolean {
  return table.indexes.some((index) => index.valid && !index.partial && sameColumns(index.columns.slice(0, columns.length), columns));
}

/** Some valid partial index whose leading key columns are the foreign-key columns. */
function hasPartialIndex(table: TableFacts, columns: readonly string[]): boolean {
  return table.indexes.some((index) => index.valid && index.partial && sameColumns(index.columns.slice(0, columns.length), columns));
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((column) => b.includes(column));
}

/** The table as a user types it in `psql`: schema-qualified only off the current schema. */
function tableName(table: Pick<TableFacts, 'schema' | 'table'>, currentSchema: string): string {
  return table.schema === currentSchema ? table.table : `${table.schema}.${table.table}`;
}
