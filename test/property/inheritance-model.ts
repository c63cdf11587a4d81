import type { PolicyName } from '../../lib/index.js';
import { KINDS_OF, TABLES, TABLE_OF, classesOf, type AnimalClass, type EntityName, type Kind, type Table } from './fixtures/inheritance-lanes.js';

/**
 * A pure model of declared deletion policies over the inheritance property tests' schema
 * (fixtures/inheritance-lanes.ts): from a configuration, the rows, and the row to delete (through
 * one of its classes), it computes what the deletion must do: refuse (validator or `restrict`), or
 * which rows remain and how. It follows the contract of DESIGN 2, 4 and 7 and issue 11:
 *
 *  - a row's policies and validators are those of its own class and its base classes, whichever
 *    class the deletion names or reaches it through (`Animal.toys` for every animal, `Dog.bones` for
 *    dogs and puppies only, never for cats);
 *  - a relation typed to a subclass (`Kennel.dogs`) reaches that subclass's rows only;
 *  - `destroy(Dog, id)` of a cat's id finds no Dog: not found;
 *  - validators run for every row a deletion deletes, by any path (`deleteAll` included).
 *
 * No database, no library code.
 */

const ASYNC_POLICIES: readonly PolicyName[] = ['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/** The synchronous policy that must end in the same rows as each policy (as in model.ts). */
export const SYNC_COUNTERPART: Readonly<Record<PolicyName, PolicyName>> = {
  destroy: 'destroy',
  deleteAll: 'deleteAll',
  nullify: 'nullify',
  restrict: 'restrict',
  destroyAsync: 'destroy',
  deleteAllAsync: 'deleteAll',
  nullifyThenPurge: 'destroy',
};

export function isAsync(policy: PolicyName): boolean {
  return ASYNC_POLICIES.includes(policy);
}

/** The policies a relation to a composite-key child supports (issue 11). */
export const COMPOSITE_POLICIES: readonly PolicyName[] = ['deleteAll', 'nullify', 'restrict'];

/** Which foreign key of the child row a relation reads: `parent` (kennel_id, animal_id, dog_id) or `home` (animal.home_id). */
type ForeignKey = 'parent' | 'home';

export interface RelationSpec {
  readonly name: RelationName;
  /** The class that declares the relation (and its policy). */
  readonly owner: 'Kennel' | 'Animal' | 'Dog';
  readonly parent: Table;
  readonly child: Table;
  readonly fk: ForeignKey;
  /** The parent rows the relation exists on (its owner's kinds), or every row of the table. */
  readonly parentKinds?: readonly Kind[];
  /** The child rows the relation reaches (its target class's kinds), or every row of the table. */
  readonly childKinds?: readonly Kind[];
  readonly policies: readonly PolicyName[];
  /** Only in lanes with the composite-key children. */
  readonly composite: boolean;
}

const ALL: readonly PolicyName[] = ['destroy', 'deleteAll', 'nullify', 'restrict', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

export const RELATIONS = [
  { name: 'animals', owner: 'Kennel', parent: 'kennel', child: 'animal', fk: 'parent', policies: ALL, composite: false },
  { name: 'dogs', owner: 'Kennel', parent: 'kennel', child: 'animal', fk: 'home', childKinds: KINDS_OF.Dog, policies: ALL, composite: false },
  { name: 'toys', owner: 'Animal', parent: 'animal', child: 'toy', fk: 'parent', policies: ALL, composite: false },
  { name: 'bones', owner: 'Dog', parent: 'animal', child: 'bone', fk: 'parent', parentKinds: KINDS_OF.Dog, policies: ALL, composite: false },
  { name: 'slots', owner: 'Kennel', parent: 'kennel', child: 'slot', fk: 'parent', policies: COMPOSITE_POLICIES, composite: true },
  // Run's foreign key is part of its primary key, so NOT NULL: no nullify.
  { name: 'runs', owner: 'Kennel', parent: 'kennel', child: 'run', fk: 'parent', policies: ['deleteAll', 'restrict'], composite: true },
] as const satisfies readonly (Omit<RelationSpec, 'name'> & { name: string })[];
export type RelationName = (typeof RELATIONS)[number]['name'];

export interface RelationConfig {
  readonly policy: PolicyName;
  readonly batchSize: number;
}

/** One lane's configuration. */
export interface InheritanceConfig {
  /** Whether the lane has the composite-key children (then `slots` and `runs` have a policy). */
  readonly composite: boolean;
  readonly relations: Readonly<Partial<Record<RelationName, RelationConfig>>>;
  /** Tombstone mode on Kennel. */
  readonly tombstone: boolean;
  /** Where the animal family's validators are declared (see LaneShape). */
  readonly setValidatorOn: AnimalClass;
  readonly instanceValidatorOn: AnimalClass;
}

/**
 * A row of any table. `id` is the primary key in key order: `[id]`, Slot's `[a, b]`, Run's
 * `[kennel, seq]`. `parent` is the many-to-one the table's first relation reads (animal.kennel_id,
 * toy.animal_id, bone.dog_id, slot.kennel_id, run.kennel_id); `home` is animal.home_id.
 */
export interface Row {
  readonly table: Table;
  readonly id: readonly number[];
  readonly kind: Kind | null;
  readonly parent: number | null;
  readonly home: number | null;
  readonly tag: number;
  readonly blocked: boolean;
  readonly held: boolean;
}

/** A row to delete, and the class the deletion names (`destroy(Dog, id)`). */
export interface Target {
  readonly entity: EntityName;
  readonly id: readonly number[];
}

export interface Scenario {
  readonly config: InheritanceConfig;
  readonly rows: readonly Row[];
  readonly targets: readonly Target[];
}

export interface Deletion {
  readonly config: InheritanceConfig;
  readonly rows: readonly Row[];
  readonly target: Target;
}

export interface RestrictViolation {
  readonly relation: RelationName;
  readonly parent: Row;
  readonly children: number;
  readonly timing: 'now' | 'later';
}

export type Expected =
  | { readonly kind: 'missing' }
  | { readonly kind: 'blocked'; readonly blockers: readonly Row[]; readonly restricted: readonly RestrictViolation[] }
  | { readonly kind: 'restricted'; readonly violations: readonly RestrictViolation[] }
  | { readonly kind: 'deleted'; readonly rows: readonly Row[]; readonly queue: 'required' | 'forbidden' | 'either' };

export const TABLE_LABEL: Readonly<Record<Table, string>> = { kennel: 'Kennel', animal: 'Animal', toy: 'Toy', bone: 'Bone', slot: 'Slot', run: 'Run' };

export function key(row: { table: Table; id: readonly number[] }): string {
  return `${TABLE_LABEL[row.table]}#${row.id.length === 1 ? row.id[0] : `(${row.id.join(',')})`}`;
}

/** `Dog#3 (puppy)`: how a target is named in messages. */
export function describeTarget(target: Target): string {
  const label = target.id.length === 1 ? `${target.id[0]}` : `(${target.id.join(',')})`;
  return `${target.entity}#${label}`;
}

export function relationsOf(config: InheritanceConfig): RelationSpec[] {
  return (RELATIONS as readonly RelationSpec[]).filter((r) => config.composite || !r.composite);
}

function policyOf(config: InheritanceConfig, relation: RelationName): RelationConfig {
  const found = config.relations[relation];
  if (!found) {
    throw new Error(`no policy for ${relation}`);
  }
  return found;
}

export function isSynchronous(config: InheritanceConfig): boolean {
  return !config.tombstone && relationsOf(config).every((r) => !isAsync(policyOf(config, r.name).policy));
}

/** The all-synchronous configuration that must end in the same rows as `config` (same classes, so same validators). */
export function syncCounterpart(config: InheritanceConfig): InheritanceConfig {
  const relations: Partial<Record<RelationName, RelationConfig>> = {};
  for (const r of relationsOf(config)) {
    const { policy, batchSize } = policyOf(config, r.name);
    relations[r.name] = { policy: SYNC_COUNTERPART[policy], batchSize };
  }
  return { ...config, relations, tombstone: false };
}

/** Whether a validator refuses to delete `row` in `config`: one validator per row at most (the generator sees to it). */
export function refuses(config: InheritanceConfig, row: Row): boolean {
  switch (row.table) {
    case 'animal':
      return (row.blocked && KINDS_OF[config.setValidatorOn].includes(row.kind!)) || (row.held && KINDS_OF[config.instanceValidatorOn].includes(row.kind!));
    case 'run':
      return row.blocked || row.held;
    default:
      return row.blocked;
  }
}

const RECURSING: readonly PolicyName[] = ['destroy', 'destroyAsync', 'nullifyThenPurge'];
const DELETING: readonly PolicyName[] = ['destroy', 'deleteAll', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/** Whether `row` is a parent of the relation (the relation exists on its class). */
function hasRelation(relation: RelationSpec, row: Row): boolean {
  return row.table === relation.parent && (!relation.parentKinds || relation.parentKinds.includes(row.kind!));
}

/** The rows `relation` reaches from `parent`. */
export function childrenOf(relation: RelationSpec, parent: Row, rows: readonly Row[]): Row[] {
  if (!hasRelation(relation, parent)) {
    return [];
  }
  const parentId = parent.id[0]!;
  return rows.filter(
    (r) => r.table === relation.child && (relation.fk === 'home' ? r.home : r.parent) === parentId && (!relation.childKinds || relation.childKinds.includes(r.kind!)),
  );
}

/** The target row, if it exists and is an instance of the class the deletion names. */
export function findTarget(rows: readonly Row[], target: Target): Row | undefined {
  const table = TABLE_OF[target.entity];
  const row = rows.find((r) => r.table === table && r.id.length === target.id.length && r.id.every((v, i) => v === target.id[i]));
  if (!row || (table === 'animal' && !KINDS_OF[target.entity as AnimalClass].includes(row.kind!))) {
    return undefined;
  }
  return row;
}

/**
 * What deleting `deletion.target` must do. The rows reached are computed over the rows before the
 * deletion: the generator never lets two relations of one kennel reach the same row (a dog's
 * `kennel_id` and `home_id` never name the same kennel), and each other table has one parent relation.
 */
export function expectedOutcome(deletion: Deletion): Expected {
  const { config, rows } = deletion;
  const target = findTarget(rows, deletion.target);
  if (!target) {
    return { kind: 'missing' };
  }
  const relations = relationsOf(config);
  const deleted = new Set<string>([key(target)]);
  const nullified = new Map<string, ForeignKey>();
  const violations: RestrictViolation[] = [];
  let requestWritten = false;
  let queuedWork = target.table === 'kennel' && config.tombstone;

  const walk = (parents: readonly Row[], later: boolean) => {
    // A deletion writes a request when rows it deletes in the request have a queued relation, or a tombstone.
    const needsRequest = parents.some((p) => (p.table === 'kennel' && config.tombstone) || relations.some((r) => hasRelation(r, p) && isAsync(policyOf(config, r.name).policy)));
    if (!later && needsRequest) {
      requestWritten = true;
    }
    for (const relation of relations) {
      const { policy } = policyOf(config, relation.name);
      const childLater = later || isAsync(policy);
      const reached: Row[] = [];
      for (const parent of parents) {
        const children = childrenOf(relation, parent, rows);
        reached.push(...children);
        if (children.length > 0 && childLater) {
          queuedWork = true;
        }
        if (policy === 'restrict' && children.length > 0) {
          violations.push({ relation: relation.name, parent, children: children.length, timing: later ? 'later' : 'now' });
        } else if (policy === 'nullify') {
          children.forEach((c) => nullified.set(key(c), relation.fk));
        } else if (DELETING.includes(policy)) {
          children.forEach((c) => deleted.add(key(c)));
        }
      }
      if (RECURSING.includes(policy) && reached.length > 0) {
        walk(reached, childLater);
      }
    }
  };
  walk([target], false);

  const blockers = rows.filter((r) => deleted.has(key(r)) && refuses(config, r));
  if (blockers.length > 0) {
    return { kind: 'blocked', blockers, restricted: violations };
  }
  if (violations.length > 0) {
    return { kind: 'restricted', violations };
  }
  const remaining = rows
    .filter((r) => !deleted.has(key(r)))
    .map((r) => {
      const fk = nullified.get(key(r));
      return fk === 'home' ? { ...r, home: null } : fk === 'parent' ? { ...r, parent: null } : r;
    });
  return { kind: 'deleted', rows: sortRows(remaining), queue: queuedWork ? 'required' : requestWritten ? 'either' : 'forbidden' };
}

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

function compareIds(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) {
      return d;
    }
  }
  return 0;
}

export function sortRows(rows: readonly Row[]): Row[] {
  return [...rows].sort((a, b) => TABLES.indexOf(a.table) - TABLES.indexOf(b.table) || compareIds(a.id, b.id));
}

/** `animals=destroyAsync/2 dogs=nullify … | validators: set on Dog, instance on Cat | tombstone on Kennel` */
export function describeConfig(config: InheritanceConfig): string {
  const relations = relationsOf(config).map((r) => {
    const { policy, batchSize } = policyOf(config, r.name);
    return `${r.owner}.${r.name}=${policy}${batchSize >= 1000 ? '' : `/${batchSize}`}`;
  });
  return `${relations.join(' ')}; blocked validator on ${config.setValidatorOn}, held validator on ${config.instanceValidatorOn}${config.tombstone ? '; tombstone on Kennel' : ''}`;
}

function label(row: Row): string {
  const marks = [row.kind ?? '', row.blocked ? 'blocked' : '', row.held ? 'held' : ''].filter(Boolean);
  return `${key(row)}${marks.length > 0 ? ` (${marks.join(', ')})` : ''}`;
}

/**
 * The rows as a forest: each row under its parent (an animal under the kennel of its kennel_id,
 * else of its home_id), with the other foreign key of an animal noted beside it:
 *
 *   Kennel#1
 *   ├─animals─ Animal#1 (cat) home Kennel#1
 *   │          └─toys─ Toy#1
 *   └─home──── Animal#2 (puppy, blocked) kennel none
 */
export function drawRows(rows: readonly Row[]): string {
  const sorted = sortRows(rows);
  const exists = new Set(sorted.map(key));
  const kennel = (id: number | null) => (id === null ? null : `Kennel#${id}`);
  /** The row it is drawn under, and the relation shown on the edge. */
  const placement = (row: Row): { parent: string; via: string } | null => {
    const candidates: [string | null, string][] =
      row.table === 'animal'
        ? [
            [kennel(row.parent), 'animals'],
            [kennel(row.home), 'home'],
          ]
        : row.table === 'toy' || row.table === 'bone'
          ? [[row.parent === null ? null : `Animal#${row.parent}`, row.table === 'toy' ? 'toys' : 'bones']]
          : row.table === 'slot' || row.table === 'run'
            ? [[kennel(row.parent), `${row.table}s`]]
            : [];
    const found = candidates.find(([parent]) => parent !== null && exists.has(parent));
    return found ? { parent: found[0]!, via: found[1] } : null;
  };
  const placed = sorted.map((row) => ({ row, at: placement(row) }));
  const annotate = (row: Row, via: string | null): string => {
    if (row.table !== 'animal') {
      return label(row);
    }
    const other = via === 'home' ? `kennel ${kennel(row.parent) ?? 'none'}` : row.home === null ? '' : `home ${kennel(row.home)}`;
    return `${label(row)}${other ? ` ${other}` : ''}`;
  };
  const lines: string[] = [];
  const draw = (row: Row, prefix: string) => {
    const children = placed.filter((p) => p.at?.parent === key(row));
    children.forEach(({ row: child, at }, i) => {
      const last = i === children.length - 1;
      lines.push(`${prefix}${last ? '└' : '├'}─${at!.via}─ ${annotate(child, at!.via)}`);
      draw(child, `${prefix}${last ? ' ' : '│'}${' '.repeat(at!.via.length + 3)}`);
    });
  };
  for (const { row, at } of placed) {
    if (at === null) {
      const gone = row.table === 'kennel' ? '' : row.parent === null && row.home === null ? ' (no parent)' : ' (parent gone)';
      lines.push(`${annotate(row, null)}${gone}`);
      draw(row, '');
    }
  }
  return lines.length > 0 ? lines.join('\n') : '(no rows)';
}

export function describeScenario(scenario: Scenario): string {
  return [`policies: ${describeConfig(scenario.config)}`, `delete: ${scenario.targets.map(describeTarget).join(', then ')}`, 'rows:', indent(drawRows(scenario.rows))].join('\n');
}

export function describeExpected(expected: Expected): string {
  switch (expected.kind) {
    case 'missing':
      return 'not found (DeletionTargetNotFoundError)';
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
      out.push(`over-deletion: ${k}${row.kind ? ` (${row.kind})` : ''} is gone but must remain`);
    } else if (found.kind !== row.kind || found.parent !== row.parent || found.home !== row.home || found.tag !== row.tag || found.blocked !== row.blocked || found.held !== row.held) {
      out.push(`changed: ${k} is ${describeRow(found)}, expected ${describeRow(row)}`);
    }
  }
  for (const [k, row] of got) {
    if (!want.has(k)) {
      out.push(`under-deletion: ${k}${row.kind ? ` (${row.kind})` : ''} remains but must be gone`);
    }
  }
  return out;
}

function describeRow(row: Row): string {
  return JSON.stringify({ kind: row.kind ?? undefined, parent: row.parent, home: row.table === 'animal' ? row.home : undefined, tag: row.tag, blocked: row.blocked, held: row.held });
}

/** The class names a row answers to, for the entity named in an error (`Animal`, `Dog` or `Puppy` for a puppy). */
export function entityNamesOf(row: Row): EntityName[] {
  return row.table === 'animal' ? classesOf(row.kind!) : [TABLE_LABEL[row.table] as EntityName];
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
