import type { PolicyName } from '../../lib/index.js';
import { SYNC_COUNTERPART, isAsync } from './model.js';

/**
 * A pure model of the deep property tests (deep-invariants.spec.ts), for two schemas:
 *
 *  - **trees**: one self-referencing table (`node`), the lane's policy on `Node.children`, tombstone
 *    mode on the node or not, and a NO ACTION foreign key (`fk`) or none;
 *  - **pairs**: `parent ─kids→ kid`, the lane's policy on `Parent.kids`, tombstone mode on the
 *    parent, the kid, or both, every foreign key NO ACTION.
 *
 * From a configuration, the rows and the row to delete it computes what the deletion must do
 * (DESIGN 2, 2.2, 4 and 7, issue 12): refuse (validators at any depth, `restrict`), fail on a
 * foreign key (a set-based delete of rows that still have children, under a NO ACTION constraint),
 * or which rows remain, whether the receipt is queued, and how many deletion requests it may file
 * at most (one per deleted row that has queued work). No database, no library code.
 */

export type Table = 'node' | 'parent' | 'kid';

/** A row of any table; `parent` is the many-to-one (the node's parent, the kid's parent), null on `parent` rows. */
export interface Row {
  readonly table: Table;
  readonly id: number;
  readonly parent: number | null;
  readonly tag: number;
  readonly blocked: boolean;
  /** Refused by the instance validator (node and kid only). A row is never both blocked and held. */
  readonly held: boolean;
}

export interface Target {
  readonly table: Table;
  readonly id: number;
}

export interface TreeConfig {
  readonly schema: 'tree';
  readonly policy: PolicyName;
  readonly batchSize: number;
  /** Tombstone mode on the node. */
  readonly tombstone: boolean;
  /** A NO ACTION foreign key from the node to its parent (else none, an index only). */
  readonly fk: boolean;
}

export interface PairConfig {
  readonly schema: 'pair';
  readonly policy: PolicyName;
  readonly batchSize: number;
  readonly parentTombstone: boolean;
  readonly kidTombstone: boolean;
  // Every foreign key of a pair lane is NO ACTION.
}

export type DeepConfig = TreeConfig | PairConfig;

export interface Scenario {
  readonly config: DeepConfig;
  readonly rows: readonly Row[];
  readonly targets: readonly Target[];
}

export type Expected =
  | { readonly kind: 'missing' }
  | { readonly kind: 'blocked'; readonly blockers: readonly Row[]; readonly restricted: boolean }
  | { readonly kind: 'restricted'; readonly children: number }
  /**
   * A set-based delete of rows that still have children, under a NO ACTION constraint: the
   * synchronous deletion fails on the foreign key and changes nothing. `blocking`: those rows.
   */
  | { readonly kind: 'conflict'; readonly blocking: readonly Row[] }
  | {
      readonly kind: 'deleted';
      readonly rows: readonly Row[];
      /** `required`: queued work (receipt pending); `forbidden`: none; `either`: a request with nothing to do. */
      readonly queue: 'required' | 'forbidden' | 'either';
      /** At most this many deletion requests: one per deleted row with queued work (plus the root's). */
      readonly maxRequests: number;
      /** Rows the deletion removes through the ORM (their own policies run), for the tally. */
      readonly destroyed: number;
    };

const RECURSING: readonly PolicyName[] = ['destroy', 'destroyAsync', 'nullifyThenPurge'];
const SET_BASED: readonly PolicyName[] = ['deleteAll', 'deleteAllAsync'];

export const TABLE_LABEL: Readonly<Record<Table, string>> = { node: 'Node', parent: 'Parent', kid: 'Kid' };
export const key = (row: { table: Table; id: number }): string => `${TABLE_LABEL[row.table]}#${row.id}`;

/** The all-synchronous configuration that must end in the same rows (same foreign keys, no tombstone). */
export function syncCounterpart(config: DeepConfig): DeepConfig {
  const policy = SYNC_COUNTERPART[config.policy];
  return config.schema === 'tree'
    ? { ...config, policy, tombstone: false }
    : { ...config, policy, parentTombstone: false, kidTombstone: false };
}

export function isSynchronous(config: DeepConfig): boolean {
  const tombstone = config.schema === 'tree' ? config.tombstone : config.parentTombstone || config.kidTombstone;
  return !tombstone && !isAsync(config.policy);
}

/** What deleting `target` from `rows` must do under `config`. */
export function expectedOutcome(config: DeepConfig, rows: readonly Row[], target: Target): Expected {
  const row = rows.find((r) => r.table === target.table && r.id === target.id);
  if (!row) {
    return { kind: 'missing' };
  }
  const childTable: Table = config.schema === 'tree' ? 'node' : 'kid';
  const childrenOf = (r: Row) => (r.table === 'kid' ? [] : rows.filter((c) => c.table === childTable && c.parent === r.id));
  const policy = config.policy;
  const tombstoned = (r: Row) => (config.schema === 'tree' ? config.tombstone : r.table === 'parent' ? config.parentTombstone : config.kidTombstone);
  /** Whether deleting rows of this table writes a deletion request (a queued policy, or a tombstone). */
  const needsRequest = (r: Row) => tombstoned(r) || (r.table !== 'kid' && isAsync(policy));

  // Rows deleted through the ORM (their own policies and hooks run), rows deleted set-based, rows detached.
  const destroyed: Row[] = [];
  const deletedSetBased: Row[] = [];
  const nullified: Row[] = [];
  let restricted = 0;
  let queuedWork = false;
  const destroy = (r: Row) => {
    destroyed.push(r);
    queuedWork ||= tombstoned(r);
    const children = childrenOf(r);
    if (children.length > 0 && isAsync(policy)) {
      queuedWork = true;
    }
    if (RECURSING.includes(policy)) {
      children.forEach(destroy);
    } else if (SET_BASED.includes(policy)) {
      deletedSetBased.push(...children);
    } else if (policy === 'nullify') {
      nullified.push(...children);
    } else if (policy === 'restrict') {
      restricted += children.length;
    }
  };
  destroy(row);

  const deleted = [...destroyed, ...deletedSetBased];
  const blockers = deleted.filter((r) => r.blocked || r.held);
  if (blockers.length > 0) {
    return { kind: 'blocked', blockers: sortRows(blockers), restricted: restricted > 0 };
  }
  if (restricted > 0) {
    return { kind: 'restricted', children: restricted };
  }
  // Under a NO ACTION constraint a set-based delete fails on rows that still have children.
  const fk = config.schema === 'pair' || config.fk;
  const blocking = fk ? deletedSetBased.filter((r) => childrenOf(r).length > 0) : [];
  if (blocking.length > 0) {
    return { kind: 'conflict', blocking };
  }
  const gone = new Set(deleted.map(key));
  const detached = new Set(nullified.map(key));
  const remaining = rows.filter((r) => !gone.has(key(r))).map((r) => (detached.has(key(r)) ? { ...r, parent: null } : r));
  const withRequests = destroyed.filter(needsRequest).length;
  // A deletion whose own row needs no request, but whose descendants have queued work, files a root request.
  const maxRequests = withRequests + (queuedWork && !needsRequest(row) ? 1 : 0);
  const queue = queuedWork ? 'required' : withRequests > 0 ? 'either' : 'forbidden';
  return { kind: 'deleted', rows: sortRows(remaining), queue, maxRequests, destroyed: destroyed.length };
}

/** Each deletion of the scenario with what it must do, on the rows the previous ones left. */
export function expectedSteps(scenario: Scenario, config: DeepConfig = scenario.config): { target: Target; expected: Expected }[] {
  let rows = sortRows(scenario.rows);
  return scenario.targets.map((target) => {
    const expected = expectedOutcome(config, rows, target);
    if (expected.kind === 'deleted') {
      rows = [...expected.rows];
    }
    return { target, expected };
  });
}

export function sortRows<R extends Row>(rows: readonly R[]): R[] {
  const order: Record<Table, number> = { parent: 0, node: 1, kid: 2 };
  return [...rows].sort((a, b) => order[a.table] - order[b.table] || a.id - b.id);
}

/** What differs between the rows expected and the rows found. */
export function diffRows(expected: readonly Row[], actual: readonly Row[]): string[] {
  const want = new Map(expected.map((r) => [key(r), r]));
  const got = new Map(actual.map((r) => [key(r), r]));
  const out: string[] = [];
  for (const [k, row] of want) {
    const found = got.get(k);
    if (!found) {
      out.push(`over-deletion: ${k} is gone but must remain`);
    } else if (found.parent !== row.parent || found.tag !== row.tag || found.blocked !== row.blocked || found.held !== row.held) {
      out.push(`changed: ${k} is ${JSON.stringify(found)}, expected ${JSON.stringify(row)}`);
    }
  }
  for (const k of got.keys()) {
    if (!want.has(k)) {
      out.push(`under-deletion: ${k} remains but must be gone`);
    }
  }
  return out;
}

/** `children=destroyAsync/2, tombstone, NO ACTION fk` */
export function describeConfig(config: DeepConfig): string {
  const batch = config.batchSize >= 1000 ? '' : `/${config.batchSize}`;
  if (config.schema === 'tree') {
    return `Node.children=${config.policy}${batch}${config.tombstone ? ', tombstone on Node' : ''}, ${config.fk ? 'NO ACTION foreign key' : 'no foreign key constraint'}`;
  }
  const tombstones = [config.parentTombstone ? 'Parent' : '', config.kidTombstone ? 'Kid' : ''].filter(Boolean);
  return `Parent.kids=${config.policy}${batch}${tombstones.length > 0 ? `, tombstone on ${tombstones.join(' and ')}` : ''}, NO ACTION foreign key`;
}

/**
 * The rows as a forest, one line per row, indented by depth up to 8 levels; deeper rows say their
 * depth and their parent:
 *
 *   Node#1
 *   └─ Node#2 [blocked]
 *      └─ Node#3 (depth 2)
 */
export function drawRows(rows: readonly Row[]): string {
  const sorted = sortRows(rows);
  const present = new Set(sorted.map(key));
  const parentTable = (r: Row): Table | undefined => (r.table === 'node' ? 'node' : r.table === 'kid' ? 'parent' : undefined);
  const label = (r: Row) => `${key(r)}${r.blocked ? ' [blocked]' : ''}${r.held ? ' [held]' : ''}`;
  const lines: string[] = [];
  const draw = (r: Row, depth: number) => {
    const indent = '   '.repeat(Math.min(depth, 8));
    lines.push(`${depth === 0 ? '' : `${indent.slice(3)}└─ `}${label(r)}${depth > 8 ? ` (depth ${depth}, under ${key({ table: r.table, id: r.parent! })})` : ''}`);
    for (const child of sorted.filter((c) => c.parent === r.id && parentTable(c) === r.table)) {
      draw(child, depth + 1);
    }
  };
  for (const r of sorted) {
    const table = parentTable(r);
    if (r.parent === null || table === undefined || !present.has(key({ table, id: r.parent }))) {
      if (r.parent !== null && table !== undefined) {
        lines.push(`(${key({ table, id: r.parent })} is gone:)`);
      }
      draw(r, 0);
    }
  }
  return lines.length > 0 ? lines.join('\n') : '(no rows)';
}

export function describeExpected(expected: Expected): string {
  switch (expected.kind) {
    case 'missing':
      return 'not found (DeletionTargetNotFoundError)';
    case 'blocked':
      return `refused by validators (DeletionBlockedError, total ${expected.blockers.length}): ${expected.blockers.map(key).join(', ')}`;
    case 'restricted':
      return `refused by restrict (DeletionRestrictedError): ${expected.children} children`;
    case 'conflict':
      return `refused by the NO ACTION foreign key: the set-based delete would remove rows that still have children (${expected.blocking.map(key).join(', ')})`;
    case 'deleted':
      return `deleted; receipt ${expected.queue === 'required' ? 'pending' : expected.queue === 'forbidden' ? 'completed' : 'pending or completed'}; at most ${expected.maxRequests} request(s); remaining rows:\n${indentText(drawRows(expected.rows))}`;
  }
}

export function indentText(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
