import type { DeletionBlocker } from '../errors/deletion-blocked.error.js';

/** One relation path of a planned deletion. */
export interface PlannedPath {
  /** `Author.books.reviews`; the first path is the deleted row itself. */
  path: string;
  entity: string;
  /** The policy that reaches these rows (`root` for the deleted row). */
  policy: string;
  /** `now`: in the request's transaction; `later`: in the queue. */
  timing: 'now' | 'later';
  /** Rows on this path today. */
  rows: number;
  /**
   * What the deletion does to them at `timing`: `delete`; `detach` (foreign key set to NULL);
   * `refuse` (a `restrict` with rows refuses the deletion); `mark` (tombstone mode: marked and hidden);
   * `unlink` (pivot rows of a many-to-many relation, which the database removes with the row).
   */
  effect: 'delete' | 'detach' | 'refuse' | 'mark' | 'unlink';
  /** What happens to them afterwards, in the queue: a marked row or a detached child is deleted later. */
  later?: 'delete';
  blockers: DeletionBlocker[];
  blockedTotal: number;
}

/** What `DeletionService.plan()` returns: the preview Django's admin shows before a delete. */
export interface DeletionPlan {
  entity: string;
  id: unknown;
  /** Whether the deletion would be accepted now (no validator refuses, no `restrict` has rows). */
  allowed: boolean;
  paths: PlannedPath[];
  /** A capped sample of all blockers, and their total. */
  blockers: DeletionBlocker[];
  blockedTotal: number;
}
