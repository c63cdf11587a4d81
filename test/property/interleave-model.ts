/**
 * A pure model of a queued cascade interleaved with concurrent actions (interleave-invariants.spec.ts):
 * parent P (id 1) is deleted under `Parent.kids = destroyAsync | deleteAllAsync | nullifyThenPurge`
 * (batch size 1-3, tombstone mode on the parent or not); between the queue's batches, and while a
 * batch holds its rows, kids are moved to the surviving parents Q1 (2) and Q2 (3), deleted directly,
 * inserted, and flagged or unflagged `blocked` (the kid's set-based validator).
 *
 * It is a state machine the spec drives in lockstep with the real queue: `accept()` (the request),
 * then per batch `apply()` the actions and `batch()`, then `finish()` (what happens to the kids left
 * under P once the walk is over). What it promises (DESIGN 2, 2.2, 4, 6 and 7, issue 12):
 *
 *  - a batch is a keyset page of P's current kids, in key order after the cursor (the last key the
 *    batch before chose: `destroyAsync`, `deleteAllAsync`), or the next rows P's `nullifyThenPurge`
 *    detached in the request that are still detached (in the order the request recorded them);
 *    it deletes only rows that still belong to P (a moved kid stays, under its new parent);
 *  - a batch re-checks the validators: a blocked kid in it fails the request (`DeletionBlockedError`)
 *    and the batch rolls back whole; once unflagged, `retry()` resumes from the same cursor;
 *  - a kid deleted directly is deleted once: a later batch does not find it, a direct deletion of a
 *    row the batch already deleted is "not found"; a blocked kid refuses its own direct deletion;
 *  - every kid deleted through the ORM (destroyAsync, the purge of nullifyThenPurge, a direct
 *    deletion) has its `afterDelete` hooks run exactly once; a set-based delete (deleteAllAsync) none;
 *  - kids inserted under P while its cascade runs: in tombstone mode (P's row is kept until the end,
 *    a NO ACTION constraint in place) the cascade removes them before P goes, through the relation's
 *    policy; without tombstone, P's row is gone: with no constraint (destroyAsync, deleteAllAsync)
 *    they are orphans that the sweeper removes through the policy (DESIGN 6); `nullifyThenPurge`
 *    keeps its NO ACTION constraint (it detaches before the parent's DELETE), which refuses them;
 *  - an action **held** open across a batch (`held()`): its transaction wrote (and locked) a row
 *    before the batch started and commits, or rolls back, only once the batch waits on that row or
 *    has ended without meeting it. See `held()` for what the batch then does under each policy.
 */


/**
 * How a kid is deleted directly: `destroy()`, `em.remove` + `flush` (the flush begins its own
 * transaction), `em.remove` inside `em.transactional()` (the flush runs in the caller's), or `sql`:
 * a plain `DELETE` of the row by another transaction (what `em.nativeDelete` or another
 * application does: no hook, no validator; only held actions use it).
 */
export type RemoveHow = 'destroy' | 'flush' | 'transaction' | 'sql';

function describeHow(how: RemoveHow): string {
  switch (how) {
    case 'destroy':
      return 'destroy()';
    case 'flush':
      return 'em.remove + flush';
    case 'transaction':
      return 'em.remove inside em.transactional()';
    case 'sql':
      return 'a plain SQL DELETE';
  }
}

export const P = 1;
export const Q1 = 2;
export const Q2 = 3;
export const PARENTS = [P, Q1, Q2] as const;

export type QueuedPolicy = 'destroyAsync' | 'deleteAllAsync' | 'nullifyThenPurge';

export interface MixConfig {
  readonly policy: QueuedPolicy;
  readonly batchSize: number;
  readonly tombstone: boolean;
  /** A NO ACTION constraint on the kid's foreign key (tombstone lanes and nullifyThenPurge), else none. */
  readonly fk: boolean;
  /** Whether the kid has its validator (`blocked` refuses); without, the flag means nothing. */
  readonly validated: boolean;
  /**
   * Whether an entity hook and a subscriber count the kid's removals. Without, nothing observes
   * them, and a direct `destroy(Kid, id)` of a validated kid takes the module's own statements.
   */
  readonly observed: boolean;
}

export interface Kid {
  readonly id: number;
  readonly parent: number | null;
  readonly tag: number;
  readonly blocked: boolean;
}

export type ParentState = 'live' | 'tombstoned' | 'gone';

/**
 * Which kid an action touches: a number picks among the kids known so far (see `resolveGaps`);
 * `{ page }` (an action while a batch holds its rows) the `page`-th row of that batch (mod its size).
 */
export type KidRef = number | { readonly page: number };

/** A concurrent action as generated. */
export type Action =
  | { readonly kind: 'move'; readonly kid: KidRef; readonly to: number }
  | { readonly kind: 'remove'; readonly kid: KidRef; readonly how: RemoveHow }
  | { readonly kind: 'insert'; readonly slot: number; readonly under: number }
  | { readonly kind: 'flip'; readonly kid: KidRef };

/** A resolved action: the kid's id, and for an insert the new key. */
export type Resolved =
  | { readonly kind: 'move'; readonly id: number; readonly to: number }
  | { readonly kind: 'remove'; readonly id: number; readonly how: RemoveHow }
  | { readonly kind: 'insert'; readonly id: number; readonly under: number }
  | { readonly kind: 'flip'; readonly id: number }
  | { readonly kind: 'none' };

/** An action on a row of the batch's page, resolved once the batch's page is known (`MixModel.onPage`). */
export type PageAction =
  | { readonly kind: 'move'; readonly page: number; readonly to: number }
  | { readonly kind: 'remove'; readonly page: number; readonly how: RemoveHow }
  | { readonly kind: 'flip'; readonly page: number };

export type Planned = Resolved | PageAction;

export const isPageAction = (action: Planned): action is PageAction => 'page' in action;

/**
 * What an action must do: `updated` n rows (move, flip), `inserted` or `refused` by the foreign key
 * (insert), `deleted`, `missing` (not found) or `blocked` (its own validator) for a direct deletion.
 */
export type ActionOutcome =
  | { readonly kind: 'updated'; readonly rows: 0 | 1 }
  | { readonly kind: 'inserted' }
  | { readonly kind: 'fk' }
  | { readonly kind: 'deleted' }
  | { readonly kind: 'missing' }
  | { readonly kind: 'blocked' }
  | { readonly kind: 'none' };

export type BatchOutcome =
  | { readonly kind: 'ok'; readonly removed: readonly number[]; readonly done: boolean }
  | { readonly kind: 'blocked'; readonly blockers: readonly number[] };

/**
 * An action held open across a batch: run in a transaction of its own before the batch starts (it
 * writes, and so locks, its row), left uncommitted while the batch runs, then committed (`commit`)
 * or rolled back once the batch waits on that row's lock or has ended without meeting it.
 */
export interface Held<D = Planned> {
  readonly action: D;
  readonly commit: boolean;
}

export interface Gap<A = Resolved, D = Planned> {
  /** Applied before the batch. */
  readonly between: readonly A[];
  /** Started once the batch holds its rows (before its validators), awaited after it. */
  readonly during: D | null;
  /** Held open across the batch (never together with `during`). */
  readonly held?: Held<D> | null;
}

/** What a batch released under a held action does, and what the action does (see `MixModel.held`). */
export interface HeldOutcome {
  /** What the action's statement does when it runs (before the batch). */
  readonly outcome: ActionOutcome;
  /** The kid row the action wrote and holds locked until it ends, if any. */
  readonly row: number | undefined;
  /** Whether the batch comes to that row, and so waits until the action ends. */
  readonly meets: boolean;
  /** The batch, as it ends after the action committed or rolled back. */
  readonly batch: BatchOutcome;
}

export interface MixScenario {
  readonly config: MixConfig;
  /** P's kids, then the bystanders under Q1 and Q2. */
  readonly kids: readonly Kid[];
  /** Before (and during) the first batch, the second, …: the walk's batches, retried ones included. */
  readonly gaps: readonly Gap[];
}

/**
 * Resolves the generated actions in order (each gap's `between`, then its `during`): a kid number
 * picks among the kids known so far (the initial ones, then those inserted), and an insert takes the
 * first free key of its slot (`slot * 10 + 5`, between the initial kids' keys 10, 20, …).
 */
export function resolveGaps(kids: readonly Kid[], gaps: readonly Gap<Action, Action>[]): Gap[] {
  const known = kids.map((k) => k.id);
  const resolve = (action: Action): Planned => {
    if (action.kind === 'insert') {
      let id = action.slot * 10 + 5;
      while (known.includes(id)) {
        id += 1;
      }
      known.push(id);
      return { kind: 'insert', id, under: action.under };
    }
    if (typeof action.kid !== 'number') {
      const page = action.kid.page;
      return action.kind === 'move' ? { kind: 'move', page, to: action.to } : action.kind === 'remove' ? { kind: 'remove', page, how: action.how } : { kind: 'flip', page };
    }
    const id = known.length === 0 ? undefined : known[action.kid % known.length]!;
    if (id === undefined) {
      return { kind: 'none' };
    }
    return action.kind === 'move' ? { kind: 'move', id, to: action.to } : action.kind === 'remove' ? { kind: 'remove', id, how: action.how } : { kind: 'flip', id };
  };
  // A page reference before a batch means nothing: it picks among the known kids instead.
  const resolveBefore = (action: Action): Resolved => resolve(action.kind !== 'insert' && typeof action.kid === 'object' ? { ...action, kid: action.kid.page } : action) as Resolved;
  return gaps.map((gap) => {
    const between = gap.between.map(resolveBefore);
    const during = gap.during === null ? null : resolve(gap.during);
    return { between, during, held: gap.held ? { action: resolve(gap.held.action), commit: gap.held.commit } : null };
  });
}

export function tagOf(id: number): number {
  return (id * 37 + 11) % 1000;
}

export class MixModel {
  readonly kids = new Map<number, Kid>();
  readonly parents = new Map<number, ParentState>(PARENTS.map((p) => [p, 'live']));
  /** Deletions through the ORM per kid id (its `afterDelete` hooks). */
  readonly hooks = new Map<number, number>();
  /** nullifyThenPurge: the rows the request detached, in the order it recorded them. */
  private records: number[] = [];
  private cursor: number | null = null;
  private recordCursor = 0;
  done = false;

  constructor(readonly config: MixConfig, kids: readonly Kid[]) {
    for (const kid of kids) {
      this.kids.set(kid.id, kid);
    }
  }

  /** P's kids now, in key order. */
  childrenOfP(): Kid[] {
    return [...this.kids.values()].filter((k) => k.parent === P).sort((a, b) => a.id - b.id);
  }

  /**
   * The request: every kid of P is validated (none may be blocked, or it is refused); P is deleted
   * (or marked); nullifyThenPurge detaches P's kids and records them.
   */
  /** Whether a kid refuses its deletion now. */
  private refuses(kid: Kid): boolean {
    return this.config.validated && kid.blocked;
  }

  accept(): { kind: 'accepted'; detached: number[] } | { kind: 'blocked'; blockers: number[] } {
    const blockers = this.childrenOfP().filter((k) => this.refuses(k));
    if (blockers.length > 0) {
      return { kind: 'blocked', blockers: blockers.map((k) => k.id) };
    }
    this.parents.set(P, this.config.tombstone ? 'tombstoned' : 'gone');
    const detached: number[] = [];
    if (this.config.policy === 'nullifyThenPurge') {
      for (const kid of this.childrenOfP()) {
        this.kids.set(kid.id, { ...kid, parent: null });
        detached.push(kid.id);
      }
    }
    return { kind: 'accepted', detached };
  }

  /** nullifyThenPurge: the order the request recorded its detached rows in (read from the database). */
  setRecords(order: readonly number[]): void {
    this.records = [...order];
  }

  apply(action: Resolved): ActionOutcome {
    switch (action.kind) {
      case 'none':
        return { kind: 'none' };
      case 'move':
      case 'flip': {
        const kid = this.kids.get(action.id);
        if (!kid) {
          return { kind: 'updated', rows: 0 };
        }
        this.kids.set(kid.id, action.kind === 'move' ? { ...kid, parent: action.to } : { ...kid, blocked: !kid.blocked });
        return { kind: 'updated', rows: 1 };
      }
      case 'insert': {
        if (this.parents.get(action.under) === 'gone' && this.config.fk) {
          return { kind: 'fk' };
        }
        this.kids.set(action.id, { id: action.id, parent: action.under, tag: tagOf(action.id), blocked: false });
        return { kind: 'inserted' };
      }
      case 'remove': {
        const kid = this.kids.get(action.id);
        if (!kid) {
          return { kind: 'missing' };
        }
        if (action.how === 'sql') {
          // A plain DELETE by another transaction: no validator is asked, no hook runs.
          this.delete([kid.id], false);
          return { kind: 'deleted' };
        }
        if (this.refuses(kid)) {
          return { kind: 'blocked' };
        }
        this.delete([kid.id], true);
        return { kind: 'deleted' };
      }
    }
  }

  /** What `action` would do now, changing nothing. */
  peek(action: Resolved): ActionOutcome {
    const kids = new Map(this.kids);
    const hooks = new Map(this.hooks);
    try {
      return this.apply(action);
    } finally {
      this.kids.clear();
      kids.forEach((kid, id) => this.kids.set(id, kid));
      this.hooks.clear();
      hooks.forEach((n, id) => this.hooks.set(id, n));
    }
  }

  /**
   * The next batch, released while `action` holds the row it wrote, in a transaction committed
   * (`commit`) or rolled back only once the batch waits on that row or has ended without it.
   * PostgreSQL (READ COMMITTED) makes a statement that comes to a row another transaction holds wait
   * until that transaction ends, then re-check that row alone, as it is after the commit, against its
   * own WHERE; every other row it reads stays as its snapshot (taken when it started) saw it:
   *
   *  - the row the action holds is a kid it moved, deleted or flagged (an insert holds no row a batch
   *    reads: the batch's snapshot does not see an uncommitted row). The batch comes to it only if it
   *    is among the rows the batch reads (`nextPage()`: P's next kids after the cursor, or the
   *    detached rows of the next records): then it waits; else it ends without meeting it,
   *    the action commits after it, and the two are as if run one after the other, batch first (an
   *    insert included: the batch's snapshot does not see it; the next batch does);
   *  - a rolled-back action, or one whose statement took no lock (its kid gone, refused by its
   *    validator or the foreign key), changes nothing: the batch is as if it had not run;
   *  - a committed action on a row the batch waits on takes effect before the batch's re-check of
   *    that row. A `destroyAsync` page (`RelationStatements.page`: MikroORM's `find` with
   *    `PESSIMISTIC_WRITE`, `... for update limit n`), a validated `deleteAllAsync` batch
   *    (`deleteCheckedBatch`, `... for update of v` in its CTE, the validator's condition computed on
   *    the row as re-checked) and `nullifyThenPurge`'s page (`find(..., { parent: null }, lock)` on the
   *    records' keys) lock as they read: a row that no longer matches (moved, deleted) is skipped and,
   *    under a LIMIT, the next row of the snapshot taken in its place; a flagged row is locked as it is
   *    now, so the validators that follow (a new statement, after the commit) see the flag and refuse
   *    the batch. That is the action applied, then the batch: as between batches;
   *  - an unvalidated `deleteAllAsync` batch (`deleteNextBatch`) chooses its rows (`b`, the next `n` of
   *    P's kids in key order after the cursor) without a lock, then deletes them by key under the same
   *    condition: the DELETE waits on the held row and, after the commit, leaves a row that no longer
   *    belongs to P. Its rows are those chosen before the action (none taken in the place of a moved
   *    or deleted one), it deletes those still under P after the action, the cursor moves to the last
   *    key it chose (deleted or not), and the walk is over only when it chose fewer than `n` (`done:
   *    batch < size`; it deleted fewer than it chose here, and the walk goes on).
   */
  held(action: Resolved, commit: boolean): HeldOutcome {
    const outcome = this.peek(action);
    const row = action.kind !== 'insert' && action.kind !== 'none' && (outcome.kind === 'deleted' || (outcome.kind === 'updated' && outcome.rows === 1)) ? action.id : undefined;
    const page = this.nextPage();
    const meets = row !== undefined && page.includes(row);
    const takesEffect = commit && (row !== undefined || outcome.kind === 'inserted');
    if (!takesEffect) {
      return { outcome, row, meets, batch: this.batch() };
    }
    const expectSame = (after: ActionOutcome) => {
      if (JSON.stringify(after) !== JSON.stringify(outcome)) {
        throw new Error(`model: ${describeAction(action)} did ${JSON.stringify(after)} after the batch, ${JSON.stringify(outcome)} before it`);
      }
    };
    if (!meets) {
      const batch = this.batch();
      expectSame(this.apply(action));
      return { outcome, row, meets, batch };
    }
    expectSame(this.apply(action));
    const chosenBefore = this.config.policy === 'deleteAllAsync' && !this.config.validated ? page : undefined;
    return { outcome, row, meets, batch: this.batch(chosenBefore) };
  }

  private delete(ids: readonly number[], throughOrm: boolean): void {
    for (const id of ids) {
      this.kids.delete(id);
      if (throughOrm) {
        this.hooks.set(id, (this.hooks.get(id) ?? 0) + 1);
      }
    }
  }

  /**
   * Whether the next batch checks its rows (holding them locked meanwhile): every `destroyAsync`
   * page, a `deleteAllAsync` batch when the kid has validators, a non-empty page of the records of
   * `nullifyThenPurge`.
   */
  checksNextBatch(): boolean {
    switch (this.config.policy) {
      case 'destroyAsync':
        return true;
      case 'deleteAllAsync':
        return this.config.validated;
      case 'nullifyThenPurge':
        return this.recordCursor < this.records.length;
    }
  }

  /** The rows the next batch takes (before its validators), without running it: those it reads, and locks or waits on. */
  nextPage(): number[] {
    const size = this.config.batchSize;
    switch (this.config.policy) {
      case 'destroyAsync':
        return this.childrenOfP()
          .filter((k) => this.cursor === null || k.id > this.cursor)
          .slice(0, size)
          .map((k) => k.id);
      case 'deleteAllAsync':
        return this.childrenOfP()
          .filter((k) => this.cursor === null || k.id > this.cursor)
          .slice(0, size)
          .map((k) => k.id);
      case 'nullifyThenPurge':
        return this.records.slice(this.recordCursor, this.recordCursor + size).filter((id) => this.kids.get(id)?.parent === null);
    }
  }

  /** A page action on the next batch's rows: its `page`-th row (none when the page is empty). */
  onPage(action: PageAction): Resolved {
    const page = this.nextPage();
    const id = page[action.page % Math.max(page.length, 1)];
    if (id === undefined) {
      return { kind: 'none' };
    }
    return action.kind === 'move' ? { kind: 'move', id, to: action.to } : action.kind === 'remove' ? { kind: 'remove', id, how: action.how } : { kind: 'flip', id };
  }

  /**
   * The next batch of the walk: its rows, re-validated; deleted whole, or refused whole.
   * `chosenBefore` (an unvalidated `deleteAllAsync` batch that waited on a held row, see `held()`):
   * the rows its statement chose before the action committed; it deletes those still under P.
   */
  batch(chosenBefore?: readonly number[]): BatchOutcome {
    const size = this.config.batchSize;
    let chosen: Kid[];
    let done: boolean;
    let next: () => void;
    switch (this.config.policy) {
      case 'destroyAsync': {
        const after = this.cursor;
        chosen = this.childrenOfP()
          .filter((k) => after === null || k.id > after)
          .slice(0, size);
        done = chosen.length < size;
        next = () => (this.cursor = chosen.at(-1)?.id ?? this.cursor);
        break;
      }
      case 'deleteAllAsync': {
        // Keyset batches, as destroyAsync's: after the last key the previous batch chose (deleted or not).
        const after = this.cursor;
        const picked = chosenBefore ?? this.childrenOfP()
          .filter((k) => after === null || k.id > after)
          .slice(0, size)
          .map((k) => k.id);
        chosen = picked.map((id) => this.kids.get(id)).filter((k): k is Kid => k !== undefined && k.parent === P);
        done = picked.length < size;
        next = () => (this.cursor = picked.at(-1) ?? this.cursor);
        break;
      }
      case 'nullifyThenPurge': {
        const page = this.records.slice(this.recordCursor, this.recordCursor + size);
        chosen = page.map((id) => this.kids.get(id)).filter((k): k is Kid => k !== undefined && k.parent === null);
        done = page.length < size;
        next = () => (this.recordCursor += page.length);
        break;
      }
    }
    const blockers = chosen.filter((k) => this.refuses(k)).map((k) => k.id);
    if (blockers.length > 0) {
      return { kind: 'blocked', blockers };
    }
    this.delete(
      chosen.map((k) => k.id),
      this.config.policy !== 'deleteAllAsync',
    );
    next();
    this.done = done;
    return { kind: 'ok', removed: chosen.map((k) => k.id), done };
  }

  /**
   * The rest of the walk with no more actions, for a request that ended before the model's walk
   * did: what its remaining batches would still delete, up to the first that a blocked kid would
   * refuse (`blockers`). Nothing to delete and no refusal: the request may end there (the rows are
   * the same); anything else was left behind.
   */
  finishWalk(): { removed: number[]; blockers: number[] } {
    const removed: number[] = [];
    while (!this.done) {
      const batch = this.batch();
      if (batch.kind === 'blocked') {
        return { removed, blockers: [...batch.blockers] };
      }
      removed.push(...batch.removed);
    }
    return { removed, blockers: [] };
  }

  /** Unflags every blocked kid (what a user does before `retry()`); returns their ids. */
  unflagAll(): number[] {
    const flagged = [...this.kids.values()].filter((k) => k.blocked);
    for (const kid of flagged) {
      this.kids.set(kid.id, { ...kid, blocked: false });
    }
    return flagged.map((k) => k.id);
  }

  /**
   * The kids left under P once the walk is over: removed by the cascade (tombstone mode) or by the
   * sweeper (no constraint), through the relation's policy, unless one is blocked (then that request
   * fails until they are unflagged). `via`: who removes them; `blocked`: those that refuse.
   */
  leftovers(): { via: 'cascade' | 'sweeper' | 'none'; kids: number[]; blocked: number[] } {
    const left = this.childrenOfP();
    const via = this.config.tombstone ? 'cascade' : this.config.fk ? 'none' : 'sweeper';
    return { via, kids: left.map((k) => k.id), blocked: left.filter((k) => this.refuses(k)).map((k) => k.id) };
  }

  /** Removes the leftovers (after any refusal was cleared); P's tombstoned row goes last. */
  finish(): void {
    const { via, kids } = this.leftovers();
    if (via !== 'none') {
      this.delete(kids, this.config.policy !== 'deleteAllAsync');
    }
    if (this.parents.get(P) === 'tombstoned') {
      this.parents.set(P, 'gone');
    }
  }

  /** The kids in key order. */
  rows(): Kid[] {
    return [...this.kids.values()].sort((a, b) => a.id - b.id);
  }
}

export function describeAction(action: Planned): string {
  if (isPageAction(action)) {
    const which = `the ${ordinal(action.page)} kid of the batch's page (mod its size)`;
    return action.kind === 'move' ? `move ${which} to Parent#${action.to}` : action.kind === 'remove' ? `delete ${which} directly (${describeHow(action.how)})` : `flip ${which}'s blocked flag`;
  }
  switch (action.kind) {
    case 'none':
      return 'nothing (no kid known)';
    case 'move':
      return `move Kid#${action.id} to Parent#${action.to}`;
    case 'remove':
      return `delete Kid#${action.id} directly (${describeHow(action.how)})`;
    case 'insert':
      return `insert Kid#${action.id} under Parent#${action.under}`;
    case 'flip':
      return `flip Kid#${action.id}'s blocked flag`;
  }
}

export function describeConfig(config: MixConfig): string {
  return `Parent.kids=${config.policy}/${config.batchSize}${config.tombstone ? ', tombstone on Parent' : ''}, ${config.fk ? 'NO ACTION foreign key' : 'no foreign key constraint'}, ${config.validated ? "Kid's validator on blocked" : 'no validator on Kid'}${config.observed ? '' : ', nothing observes Kid'}`;
}

function ordinal(n: number): string {
  return `${n + 1}${n === 0 ? 'st' : n === 1 ? 'nd' : n === 2 ? 'rd' : 'th'}`;
}
