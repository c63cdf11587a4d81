import type { PolicyName } from '../policies/policy-names.js';

/** What the doctor does at bootstrap. The type and the runtime check come from this one array. */
export const DOCTOR_MODES = ['error', 'warn', 'off'] as const;

/**
 * - `error` (default): error findings stop the boot; warnings are logged.
 * - `warn`: every finding is logged, and the application starts.
 * - `off`: nothing runs at bootstrap (`DeletionService.doctor()` still works).
 */
export type DoctorMode = (typeof DOCTOR_MODES)[number];

/** Stable codes of the doctor's findings, for tooling and for searching the docs. */
export const DOCTOR_CODES = {
  /** An async policy over an `ON DELETE CASCADE` foreign key: the database empties it first. */
  CASCADE_FK: 'DELETION_DOCTOR_CASCADE_FK',
  /** An async policy over an `ON DELETE SET NULL` foreign key: the children are orphaned instead. */
  SET_NULL_FK: 'DELETION_DOCTOR_SET_NULL_FK',
  /** An async policy over an `ON DELETE SET DEFAULT` foreign key: the children are re-parented. */
  SET_DEFAULT_FK: 'DELETION_DOCTOR_SET_DEFAULT_FK',
  /** An async policy over a `NO ACTION`/`RESTRICT` foreign key without tombstone mode. */
  BLOCKING_FK: 'DELETION_DOCTOR_BLOCKING_FK',
  /**
   * `destroy` over children in tombstone mode whose NOT NULL foreign key blocks the parent's DELETE:
   * a marked child stays until its queued work is done, but the parent goes in the request.
   */
  TOMBSTONE_UNDER_DESTROY: 'DELETION_DOCTOR_TOMBSTONE_UNDER_DESTROY',
  /**
   * `deleteAllAsync` over children whose own children reference them through a constraint that
   * blocks their DELETE: the request is accepted, and the queued set-based delete fails.
   */
  SET_BASED_BLOCKED: 'DELETION_DOCTOR_SET_BASED_BLOCKED',
  /** `nullify`/`nullifyThenPurge` over a column that is NOT NULL in the database. */
  NOT_NULL: 'DELETION_DOCTOR_NOT_NULL',
  /** No index starts with the foreign-key column(s): each deletion scans the child table. */
  UNINDEXED_FK: 'DELETION_DOCTOR_UNINDEXED_FK',
  /** `deleteAll`/`deleteAllAsync` over children with policies (or validators) of their own. */
  SKIPPED_POLICIES: 'DELETION_DOCTOR_SKIPPED_POLICIES',
  /** A set-based validator over children whose foreign key no partial index serves: it scans every child. */
  UNSERVED_VALIDATOR: 'DELETION_DOCTOR_UNSERVED_VALIDATOR',
  /** The child's table is not in the database, so the relation could not be checked. */
  TABLE_MISSING: 'DELETION_DOCTOR_TABLE_MISSING',
  /** The child's foreign-key column is not in its table, so the relation could not be checked. */
  COLUMN_MISSING: 'DELETION_DOCTOR_COLUMN_MISSING',
} as const;

export type DoctorCode = (typeof DOCTOR_CODES)[keyof typeof DOCTOR_CODES];

/**
 * One conflict between a declared policy and the real schema. `error`: the policy would misbehave
 * (do nothing, orphan rows, or make deletions fail). `warning`: it works, but slowly or partially.
 */
export interface DoctorFinding {
  readonly severity: 'error' | 'warning';
  readonly code: DoctorCode;
  /** The parent entity and the relation that carries the policy. */
  readonly entity: string;
  readonly relation: string;
  readonly policy: PolicyName;
  /** The foreign-key constraint involved, when there is one. */
  readonly constraint?: string;
  /** What is wrong and why. */
  readonly message: string;
  /** A concrete change that makes the finding go away. */
  readonly fix: string;
}

/** One line per finding, as logged and as listed in the boot error. */
export function formatFinding(finding: DoctorFinding): string {
  return `[${finding.code}] ${finding.message} Fix: ${finding.fix}`;
}
