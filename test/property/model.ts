import type { PolicyName } from '../../lib/index.js';
import { LEVELS, LEVEL_LABEL, RELATIONS, type Level, type RelationName } from './fixtures/node-lanes.js';

/**
 * A pure model of declared deletion policies over the property tests' node tree (fixtures/node-lanes.ts):
 * from a policy configuration, the rows, and the row to delete, it computes what the deletion must
 * do: refuse (validator or `restrict`), or which rows remain and how. No database, no library code.
 */

export const ASYNC_POLICIES: readonly PolicyName[] = ['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/**
 * The synchronous policy that must end in the same rows as each policy (DESIGN 2): a queued
 * `destroy`/`deleteAll` ends as the synchronous one; `nullifyThenPurge` destroys, in the queue, exactly
 * the rows it detached, so it ends as `destroy`.
 */
export const SYNC_COUNTERPART: Readonly<Record<PolicyName, PolicyName>> = {
  destroy: 'destroy',
  deleteAll: 'deleteAll',
  nullify: 'nullify',
  restrict: 'restrict',
  destroyAsync: 'destroy',
  deleteAllAsync: 'deleteAll',
  nullifyThenPurge: 'destroy',
};

export interface RelationConfig {
  readonly policy: PolicyName;
  readonly batchSize: number;
}

/** One lane's configuration: a policy on every relation, and tombstone mode on L0 or not. */
export interface PolicyConfig {
  readonly relations: Readonly<Record<RelationName, RelationConfig>>;
  readonly tombstone: boolean;
  /**
   * The lane's parent keys are required (NOT NULL) and its parent levels are under an application
   * filter on `hidden` (a required lane, fixtures/node-lanes.ts): no `nullify` or `nullifyThenPurge`,
   * and `findOne()` does not find a row whose parent is hidden, tombstoned or gone.
   */
  readonly required?: boolean;
}

export interface Row {
  readonly level: Level;
  readonly id: number;
  /** The parent's id at the level above (see RELATIONS), or null. */
  readonly parent: number | null;
  readonly tag: number;
  readonly blocked: boolean;
  /** Hidden by the application filter (required lanes' parent levels only). */
  readonly hidden?: boolean;
  /** Tombstoned already (L0 in tombstone mode only): its queued deletion is still to come. */
  readonly marked?: boolean;
}

export interface Target {
  readonly level: Level;
  readonly id: number;
}

/** One case: a configuration, the rows before, and the rows deleted one after the other. */
export interface Scenario {
  readonly config: PolicyConfig;
  readonly rows: readonly Row[];
  readonly targets: readonly Target[];
}

/** One deletion of a scenario, on the rows its predecessors left. */
export interface Deletion {
  readonly config: PolicyConfig;
  readonly rows: readonly Row[];
  readonly target: Target;
}

export interface RestrictViolation {
  readonly relation: RelationName;
  readonly parent: Row;
  readonly children: number;
  /** `now`: the parent rows are reached in the request; `later`: only through a queued policy. */
  readonly timing: 'now' | 'later';
}

/**
 * Why `findOne()` does not find the target: no such row (`gone`); the row is hidden by the
 * application filter or tombstoned; or (required lanes) its parent is, or its parent row is gone:
 * `findOne()` inner-joins a required to-one parent whose entity has an active filter.
 */
export type MissingReason = 'gone' | 'hidden' | 'tombstoned' | 'parent hidden' | 'parent tombstoned' | 'parent gone';

export type Expected =
  /** The target row is not found: `DeletionTargetNotFoundError`; nothing changes. */
  | { readonly kind: 'missing'; readonly reason: MissingReason }
  /** A validator refuses: `DeletionBlockedError`; nothing changes, nothing is enqueued. */
  | { readonly kind: 'blocked'; readonly blockers: readonly Row[]; readonly restricted: readonly RestrictViolation[] }
  /** A `restrict` relation has children: `DeletionRestrictedError`; nothing changes, nothing is enqueued. */
  | { readonly kind: 'restricted'; readonly violations: readonly RestrictViolation[] }
  /**
   * The deletion goes through and ends in `rows`. `queue`: whether its receipt must be `pending`
   * (queued work or a tombstone), must be `completed` (no queued policy and no tombstone on any
   * entity the request deletes rows of), or may be either (a queued policy with nothing under it).
   */
  | { readonly kind: 'deleted'; readonly rows: readonly Row[]; readonly queue: 'required' | 'forbidden' | 'either' };

export const key = (row: { level: Level; id: number }): string => `${LEVEL_LABEL[row.level]}#${row.id}`;

export function isAsync(policy: PolicyName): boolean {
  return ASYNC_POLICIES.includes(policy);
}

/** Whether a configuration has nothing queued: no queued policy and no tombstone. */
export function isSynchronous(config: PolicyConfig): boolean {
  return !config.tombstone && RELATIONS.every((r) => !isAsync(config.relations[r.name].policy));
}

/** The all-synchronous configuration that must end in the same rows as `config`. */
export function syncCounterpart(config: PolicyConfig): PolicyConfig {
  const relations = {} as Record<RelationName, RelationConfig>;
  for (const r of RELATIONS) {
    const { policy, batchSize } = config.relations[r.name];
    relations[r.name] = { policy: SYNC_COUNTERPART[policy], batchSize };
  }
  return { relations, tombstone: false, ...(config.required ? { required: true } : {}) };
}

/**
 * The rows as a lane of `config` holds them: without tombstone mode a tombstoned row is hidden by
 * the application filter instead, which every finder treats alike (neither is found, nor is a row
 * whose required parent is either), and no policy reaches L0. So a case's rows run on both lanes
 * of a configuration, and the lanes' rows compare through this view.
 */
export function rowsFor<R extends Row>(config: Pick<PolicyConfig, 'tombstone'>, rows: readonly R[]): R[] {
  return config.tombstone ? [...rows] : rows.map((r) => (r.marked ? { ...r, marked: undefined, hidden: true } : r));
}

/**
 * Whether a `restrict` relation of `config` can be reached only through a queued policy: some
 * chain of destroying relations from a deleted row down to the restricted parent passes a queued one.
 */
export function hasQueuedRestrict(config: PolicyConfig): boolean {
  const recursing = (policy: PolicyName) => policy === 'destroy' || policy === 'destroyAsync' || policy === 'nullifyThenPurge';
  return RELATIONS.some((restricted) => {
    if (config.relations[restricted.name].policy !== 'restrict') {
      return false;
    }
    // Up from the restricted parent: a queued destroying relation on an unbroken chain of destroying ones.
    const relationInto = (level: Level) => RELATIONS.find((r) => r.child === level);
    for (let above = relationInto(restricted.parent); above; above = relationInto(above.parent)) {
      const { policy } = config.relations[above.name];
      if (!recursing(policy)) {
        return false;
      }
      if (isAsync(policy)) {
        return true;
      }
    }
    return false;
  });
}

/** A `restrict` that refuses, reached only through queued policies: the request cannot see it unless it looks down the tree. */
export function refusedOnlyByQueuedRestrict(expected: Expected): boolean {
  return expected.kind === 'restricted' && expected.violations.every((v) => v.timing === 'later');
}

/** Whether deleting rows of `level` writes a deletion request (a queued relation, or a tombstone). */
function needsRequest(config: PolicyConfig, level: Level): boolean {
  return (level === 'l0' && config.tombstone) || RELATIONS.some((r) => r.parent === level && isAsync(config.relations[r.name].policy));
}

/**
 * What deleting `deletion.target` must do. The rows reached are computed over the rows as they are
 * before the deletion: in this tree each table has a single parent relation, so what one relation's
 * policy does never changes the rows another relation sees.
 */
export function expectedOutcome(deletion: Deletion): Expected {
  const { config, rows } = deletion;
  const target = rows.find((r) => r.level === deletion.target.level && r.id === deletion.target.id);
  const missing = whyNotFound(deletion, target);
  if (missing || !target) {
    return { kind: 'missing', reason: missing ?? 'gone' };
  }
  const deleted = new Set<string>([key(target)]);
  const nullified = new Set<string>();
  const violations: RestrictViolation[] = [];
  let requestWritten = false;
  let queuedWork = target.level === 'l0' && config.tombstone;

  const walk = (level: Level, parents: readonly Row[], later: boolean) => {
    if (!later && needsRequest(config, level)) {
      requestWritten = true;
    }
    for (const relation of RELATIONS.filter((r) => r.parent === level)) {
      const { policy } = config.relations[relation.name];
      const childLater = later || isAsync(policy);
      for (const parent of parents) {
        const children = rows.filter((r) => r.level === relation.child && r.parent === parent.id);
        if (children.length > 0 && childLater) {
          queuedWork = true;
        }
        switch (policy) {
          case 'restrict':
            if (children.length > 0) {
              violations.push({ relation: relation.name, parent, children: children.length, timing: later ? 'later' : 'now' });
            }
            break;
          case 'nullify':
            children.forEach((c) => nullified.add(key(c)));
            break;
          case 'deleteAll':
          case 'deleteAllAsync':
          case 'destroy':
          case 'destroyAsync':
          case 'nullifyThenPurge':
            children.forEach((c) => deleted.add(key(c)));
            break;
        }
      }
      if (policy === 'destroy' || policy === 'destroyAsync' || policy === 'nullifyThenPurge') {
        const parentIds = new Set(parents.map((p) => p.id));
        const children = rows.filter((r) => r.level === relation.child && r.parent !== null && parentIds.has(r.parent));
        if (children.length > 0) {
          walk(relation.child, children, childLater);
        }
      }
    }
  };
  walk(target.level, [target], false);

  const blockers = rows.filter((r) => r.blocked && deleted.has(key(r)));
  if (blockers.length > 0) {
    return { kind: 'blocked', blockers, restricted: violations };
  }
  if (violations.length > 0) {
    return { kind: 'restricted', violations };
  }
  const remaining = rows.filter((r) => !deleted.has(key(r))).map((r) => (nullified.has(key(r)) ? { ...r, parent: null } : r));
  return { kind: 'deleted', rows: sortRows(remaining), queue: queuedWork ? 'required' : requestWritten ? 'either' : 'forbidden' };
}

/**
 * Why `destroy()` must not find the target (`DeletionService.destroy()` loads the row as
 * `findOne()` does, under the application's filters: "a hidden row is 'not found'"), or undefined
 * when it is found:
 *  - no such row, or the row itself is hidden by the application filter or tombstoned;
 *  - on a required lane: its parent (the direct to-one; not a grandparent) is hidden, tombstoned,
 *    or gone. MikroORM's `findOne()` joins a to-one relation whose target entity has an active
 *    filter (`autoJoinRefsForFilters`) to apply that filter, with an INNER join when the relation
 *    is required: no parent row passing the parent's filters, no row. Every parent level of a
 *    required lane has the application filter, so the join is always there. On the other lanes the
 *    keys are nullable (a LEFT join: the row is found) and no filter hides rows.
 * The policies see every row: hidden and tombstoned children are deleted, validated and counted
 * by `restrict` like any other (the module's own statements apply no application filter).
 */
function whyNotFound(deletion: Deletion, target: Row | undefined): MissingReason | undefined {
  if (!target) {
    return 'gone';
  }
  if (target.hidden) {
    return 'hidden';
  }
  if (target.marked) {
    return 'tombstoned';
  }
  const relation = RELATIONS.find((r) => r.child === target.level);
  if (!deletion.config.required || !relation) {
    return undefined;
  }
  const parent = target.parent === null ? undefined : deletion.rows.find((r) => r.level === relation.parent && r.id === target.parent);
  return !parent ? 'parent gone' : parent.hidden ? 'parent hidden' : parent.marked ? 'parent tombstoned' : undefined;
}

/** Each deletion of the scenario with what it must do, on the rows the previous ones left. */
export function expectedSteps(scenario: Scenario): { deletion: Deletion; expected: Expected }[] {
  let rows = sortRows(scenario.rows);
  return scenario.targets.map((target) => {
    const deletion = { config: scenario.config, rows, target };
    const expected = expectedOutcome(deletion);
    if (expected.kind === 'deleted') {
      rows = [...expected.rows];
    }
    return { deletion, expected };
  });
}

/** Rows in level order, then model-id order (whatever order the lane's keys sort in). */
export function sortRows<R extends Row>(rows: readonly R[]): R[] {
  return [...rows].sort((a, b) => LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level) || a.id - b.id);
}

/** `a=destroyAsync/2 b=nullify c=restrict/1 d=deleteAll, tombstone on L0` */
export function describeConfig(config: PolicyConfig): string {
  const relations = RELATIONS.map((r) => {
    const { policy, batchSize } = config.relations[r.name];
    return `${LEVEL_LABEL[r.parent]}.${r.name}=${policy}${batchSize >= 1000 ? '' : `/${batchSize}`}`;
  });
  return `${relations.join(' ')}${config.tombstone ? ', tombstone on L0' : ''}`;
}

/**
 * The rows as a forest, children under their parent, `[blocked]` on rows a validator refuses:
 *
 *   L0#1
 *   ├─a─ L1a#1 [blocked]
 *   │    └─c─ L2#1
 *   └─b─ L1b#1
 */
export function drawRows(rows: readonly Row[]): string {
  const sorted = sortRows(rows);
  const exists = new Set(sorted.map(key));
  const parentLevel = (level: Level) => RELATIONS.find((r) => r.child === level)?.parent;
  const childrenOf = (row: Row) =>
    RELATIONS.filter((r) => r.parent === row.level).flatMap((r) => sorted.filter((c) => c.level === r.child && c.parent === row.id).map((c) => ({ via: r.name, row: c })));
  const label = (row: Row) => `${key(row)}${row.blocked ? ' [blocked]' : ''}${row.hidden ? ' [hidden]' : ''}${row.marked ? ' [tombstoned]' : ''}`;
  const lines: string[] = [];
  const draw = (row: Row, prefix: string) => {
    const children = childrenOf(row);
    children.forEach(({ via, row: child }, i) => {
      const last = i === children.length - 1;
      lines.push(`${prefix}${last ? '└' : '├'}─${via}─ ${label(child)}`);
      draw(child, `${prefix}${last ? ' ' : '│'}    `);
    });
  };
  for (const row of sorted) {
    const level = parentLevel(row.level);
    if (row.parent === null || level === undefined || !exists.has(key({ level, id: row.parent }))) {
      const detached = level === undefined ? '' : row.parent === null ? ' (no parent)' : ` (parent ${key({ level, id: row.parent })} is gone)`;
      lines.push(`${label(row)}${detached}`);
      draw(row, '');
    }
  }
  return lines.length > 0 ? lines.join('\n') : '(no rows)';
}

export function describeScenario(scenario: Scenario): string {
  return [`policies: ${describeConfig(scenario.config)}`, `delete: ${scenario.targets.map(key).join(', then ')}`, 'rows:', indent(drawRows(scenario.rows))].join('\n');
}

export function describeExpected(expected: Expected): string {
  switch (expected.kind) {
    case 'missing':
      return `not found (DeletionTargetNotFoundError)${expected.reason === 'gone' ? '' : `: ${expected.reason}`}`;
    case 'blocked':
      return `refused by validators (DeletionBlockedError): ${expected.blockers.map(key).join(', ')}`;
    case 'restricted':
      return `refused by restrict (DeletionRestrictedError): ${expected.violations.map((v) => `${key(v.parent)}.${v.relation} has ${v.children} (${v.timing})`).join(', ')}`;
    case 'deleted':
      return `deleted; receipt ${expected.queue === 'required' ? 'pending' : expected.queue === 'forbidden' ? 'completed' : 'pending or completed'}; remaining rows:\n${indent(drawRows(expected.rows))}`;
  }
}

/** What differs between the rows expected and the rows found, row by row. */
export function diffRows(expected: readonly Row[], actual: readonly Row[]): string[] {
  const want = new Map(expected.map((r) => [key(r), r]));
  const got = new Map(actual.map((r) => [key(r), r]));
  const out: string[] = [];
  for (const [k, row] of want) {
    const found = got.get(k);
    if (!found) {
      out.push(`over-deletion: ${k} is gone but must remain`);
    } else if (found.parent !== row.parent || found.tag !== row.tag || found.blocked !== row.blocked || !found.hidden !== !row.hidden) {
      out.push(`changed: ${k} is ${JSON.stringify(found)}, expected ${JSON.stringify(row)}`);
    } else if (!found.marked !== !row.marked) {
      out.push(`changed: ${k} is ${found.marked ? 'left tombstoned' : 'no longer tombstoned'}`);
    }
  }
  for (const k of got.keys()) {
    if (!want.has(k)) {
      out.push(`under-deletion: ${k} remains but must be gone`);
    }
  }
  return out;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
