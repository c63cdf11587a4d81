import { QueryOrder, Utils, helper, raw, type EntityManager, type EntityMetadata, type FilterQuery, type QueryOrderMap } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { validatorsOf } from '../decorators/validate-before-destroy.decorator.js';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import { DeletionBlockedError, type DeletionBlocker } from '../errors/deletion-blocked.error.js';
import { DeletionRestrictedError } from '../errors/deletion-restricted.error.js';
import { DeletionValidationBudgetError } from '../errors/deletion-validation-budget.error.js';
import { DeletionValidationDepthError } from '../errors/deletion-validation-depth.error.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { EntityTable } from '../sql/entity-table.js';
import { count, query } from '../sql/execute.js';
import { countPivotRows, keysOf } from '../sql/relation-statements.js';
import { rowsUnder, type SqlFragment } from '../sql/rows-under.js';
import { ValidatorStatements } from '../sql/validator-statements.js';
import { MAX_TREE_DEPTH, deletionTree, type DeletionNode } from './deletion-tree.js';

/** Validators' verdict over a deletion: a capped sample of blockers and their total. */
export interface ValidationVerdict {
  blockers: DeletionBlocker[];
  total: number;
  /** Per relation path, the blockers found there (same cap). */
  byPath: Map<string, { blockers: DeletionBlocker[]; total: number }>;
}

/** The rows a deletion starts from: their entity, keys, and the loaded instances if there are. */
export interface DeletionRoots {
  meta: EntityMetadata;
  ids: readonly unknown[];
  entities?: readonly object[];
  /** Relation path of these rows, when they are themselves reached from further up (the queue). */
  path?: string;
  /**
   * The verdict of the rows' own instance validators, already run on `entities` in this
   * transaction: not run again (a validator runs once per row and deletion, as a hook does).
   */
  ownInstanceBlockers?: readonly DeletionBlocker[];
}

/** A deletion's checks as a condition (see `ValidationHoister.guard`). */
export interface DeletionGuard extends SqlFragment {
  /** Runs the checks in full after the guarded insert was refused; throws with the blockers. */
  refused(): Promise<void>;
}

/** Deletion trees kept per entity (one per relation path its rows are deleted on). */
const MAX_CACHED_PATHS = 64;

/** Deletions of up to this many rows at once carry their checks in the request row's insert. */
const MAX_GUARDED_IDS = 8;

/**
 * Hoists child-side validations onto the parent: before a deletion writes anything, every
 * `@ValidateBeforeDestroy()` validator of every entity whose rows it would delete, at any depth, is
 * evaluated. Set-based validators cost one query per relation path; instance validators load the
 * affected rows in keyset pages, within `validation.maxInstances`.
 */
@Injectable()
export class ValidationHoister {
  private readonly statements = new ValidatorStatements();
  /** `deletionTree()` by entity and path: a pure function of the registry, fixed at boot. */
  private readonly trees = new WeakMap<EntityMetadata, Map<string | undefined, readonly DeletionNode[]>>();

  constructor(
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  /**
   * Throws `DeletionBlockedError` (or the budget error) when any validator refuses. `descend: false`
   * checks the rows themselves only (a set-based delete skips their own policies).
   */
  async assertDeletable(em: EntityManager, roots: DeletionRoots, { descend = true } = {}): Promise<void> {
    const full = this.tree(roots.meta, roots.path);
    const tree = descend ? full : full.slice(0, 1);
    const verdict = await this.evaluate(em, roots, tree);
    if (verdict.total > 0) {
      throw DeletionBlockedError.create({
        entity: roots.meta.className,
        id: roots.ids.length === 1 ? roots.ids[0] : [...roots.ids],
        blockers: verdict.blockers,
        total: verdict.total,
      });
    }
    await this.assertNoQueuedRestrict(em, roots, tree);
  }

  /**
   * The same checks as {@link assertDeletable}, as one SQL condition that holds when nothing blocks,
   * for a deletion that writes a request row: the row is inserted only where the condition holds,
   * which saves the request a round trip per check. When the insert is refused, `refused()` runs
   * the full checks (and throws with the blockers). The instance validators of the rows themselves,
   * loaded in `roots.entities`, run here first: when one refuses, so do the full checks (they throw).
   * `undefined` when some other check is not a statement (instance validators further down, a
   * queued many-to-many `restrict`) or the deletion is of many rows at once: use `assertDeletable`.
   */
  async guard(em: EntityManager, roots: DeletionRoots): Promise<DeletionGuard | undefined> {
    if (roots.ids.length > MAX_GUARDED_IDS) {
      return undefined;
    }
    const parts: SqlFragment[] = [];
    const tree = this.tree(roots.meta, roots.path);
    for (const node of tree) {
      const loaded = node.hops.length === 0 && roots.entities?.length === roots.ids.length;
      if ((node.deleted && node.instanceValidators && !loaded) || node.truncated) {
        return undefined;
      }
      if (node.deleted) {
        for (const { meta, sets } of node.sets) {
          parts.push(...sets.map((set) => this.statements.exists(em, meta, node.hops, roots.ids, set)));
        }
      }
      if (node.relation?.policy === 'restrict' && node.timing === 'later') {
        if (node.owner) {
          return undefined;
        }
        parts.push(this.statements.exists(em, node.meta, node.hops, roots.ids));
      }
    }
    const own = tree[0];
    const checked = own?.deleted && own.instanceValidators ? { ...roots, ownInstanceBlockers: await this.evaluateInstances(em, own, roots, { left: Infinity }) } : roots;
    if ((checked.ownInstanceBlockers?.length ?? 0) > 0) {
      await this.assertDeletable(em, checked);
    }
    return {
      sql: parts.length === 0 ? 'true' : parts.map((part) => `not exists (${part.sql})`).join(' and '),
      params: parts.flatMap((part) => part.params),
      refused: () => this.assertDeletable(em, checked),
    };
  }

  /**
   * The validators of rows of `meta` themselves (not of their descendants) as conditions on the row
   * alias `v` alone, for a statement that checks rows as it locks them; `undefined` when some check
   * cannot be one (an instance validator, a subclass with validators of its own, a condition that
   * reads other rows).
   */
  ownRowChecks(em: EntityManager, meta: EntityMetadata): SqlFragment[] | undefined {
    const validators = this.registry.forMeta(meta)?.validators;
    if ((validators?.methods.length ?? 0) > 0 || this.registry.subclassesWithOwnRules(meta).length > 0) {
      return undefined;
    }
    const checks: SqlFragment[] = [];
    for (const set of validators?.sets ?? []) {
      const check = this.statements.rowCondition(em, meta, set);
      if (!check) {
        return undefined;
      }
      checks.push(check);
    }
    return checks;
  }

  private tree(meta: EntityMetadata, path: string | undefined): readonly DeletionNode[] {
    let byPath = this.trees.get(meta);
    if (!byPath) {
      byPath = new Map();
      this.trees.set(meta, byPath);
    }
    let tree = byPath.get(path);
    if (!tree) {
      tree = Object.freeze(deletionTree(this.registry, meta, path));
      // Paths of a recursive cascade grow with its depth: only so many are kept per entity.
      if (byPath.size < MAX_CACHED_PATHS) {
        byPath.set(path, tree);
      }
    }
    return tree;
  }

  /**
   * A `restrict` below a queued policy would only refuse in the queue, after the parent is gone: it
   * is checked here instead, with one count per such path, as its synchronous counterpart would
   * refuse in the request. (`restrict`s reached synchronously refuse on their own, in the request.)
   */
  private async assertNoQueuedRestrict(em: EntityManager, roots: DeletionRoots, tree: readonly DeletionNode[]): Promise<void> {
    for (const node of tree) {
      const relation = node.relation;
      if (relation?.policy !== 'restrict' || node.timing !== 'later') {
        continue;
      }
      const count = await this.countRestricted(em, node, roots.ids);
      if (count > 0) {
        const parents = node.owner ? [...roots.ids] : await this.restrictedParents(em, node, roots.ids);
        throw DeletionRestrictedError.create({
          entity: relation.entity,
          id: parents.length === 1 ? parents[0] : parents,
          relation: relation.relation,
          childEntity: relation.childMeta.className,
          count,
        });
      }
    }
  }

  /** A sample of the parents whose children a queued `restrict` counts: the rows it refuses to delete. */
  private async restrictedParents(em: EntityManager, node: DeletionNode, ids: readonly unknown[]): Promise<unknown[]> {
    const { table, from, where } = rowsUnder(em, node.meta, node.hops, ids);
    const parent = EntityTable.of(em, node.hops[0]!.upper);
    const sql = `select distinct ${table.column(node.relation!.childProperty, 'v')} as "p0" from ${from} where ${where.sql} order by 1 limit ?`;
    const rows = await query(em, sql, [...where.params, this.options.validation.maxBlockers]);
    return rows.map((row) => parent.keys.toJson(parent.keys.fromRow(row, 'p')));
  }

  /** Rows that a `restrict` node counts under `ids`: children, or pivot rows for a many-to-many relation. */
  async countRestricted(em: EntityManager, node: DeletionNode, ids: readonly unknown[]): Promise<number> {
    if (node.owner) {
      const owners = rowsUnder(em, node.owner, node.hops, ids);
      return countPivotRows(em, node.relation!, keysOf(owners.table, owners.from, owners.where));
    }
    const { from, where } = rowsUnder(em, node.meta, node.hops, ids);
    return count(em, `select count(*) as n from ${from} where ${where.sql}`, where.params);
  }

  /** Every validator's verdict over the given relation paths, without throwing on a refusal. */
  async evaluate(em: EntityManager, roots: DeletionRoots, nodes: readonly DeletionNode[]): Promise<ValidationVerdict> {
    const cap = this.options.validation.maxBlockers;
    const verdict: ValidationVerdict = { blockers: [], total: 0, byPath: new Map() };
    const budget = { left: this.options.validation.maxInstances };
    for (const node of nodes.filter((n) => n.truncated)) {
      const { from, where } = rowsUnder(em, node.meta, node.hops, roots.ids);
      if ((await query(em, `select 1 from ${from} where ${where.sql} limit 1`, where.params)).length > 0) {
        throw DeletionValidationDepthError.create(node.meta.className, node.path, MAX_TREE_DEPTH);
      }
    }
    for (const node of nodes.filter((n) => n.deleted)) {
      const found: DeletionBlocker[] = [];
      let total = 0;
      for (const { meta, sets } of node.sets) {
        for (const set of sets) {
          const { table, sql, params } = this.statements.sample(em, meta, node.hops, roots.ids, set, cap);
          const rows = await query(em, sql, params);
          total += Number(rows[0]?.blocked_total ?? 0);
          found.push(...rows.map((row) => ({ entity: meta.className, id: table.keys.toJson(table.keys.fromRow(row, 'k')), path: node.path, reason: set.message })));
        }
      }
      if (node.instanceValidators) {
        const known = node.hops.length === 0 ? roots.ownInstanceBlockers : undefined;
        const result = known ? [...known] : await this.evaluateInstances(em, node, roots, budget);
        found.push(...result);
        total += result.length;
      }
      if (total > 0) {
        verdict.byPath.set(node.path, { blockers: found.slice(0, cap), total });
        verdict.blockers.push(...found.slice(0, cap - verdict.blockers.length));
        verdict.total += total;
      }
    }
    return verdict;
  }

  /**
   * The row of an uninitialized reference, loaded on its own (the reference is the caller's and
   * stays as it is), as its own class, whatever filter the application has; `null` when it is gone.
   */
  private async loadRow(em: EntityManager, reference: object): Promise<object | null> {
    const wrapped = helper(reference);
    const fork = em.fork({ clear: true, keepTransactionContext: true });
    return fork.findOne(wrapped.__meta.class as new () => object, wrapped.getPrimaryKey() as FilterQuery<object>, { filters: false });
  }

  /** Runs each row's instance validators (those of its own class, inherited ones included). */
  private async evaluateInstances(em: EntityManager, node: DeletionNode, roots: DeletionRoots, budget: { left: number }): Promise<DeletionBlocker[]> {
    const blockers: DeletionBlocker[] = [];
    const check = async (entity: object) => {
      const meta = em.getMetadata().find(entity.constructor) ?? node.meta;
      const { keys } = EntityTable.of(em, meta);
      for (const method of validatorsOf(entity.constructor).methods) {
        const reason = await runValidator(entity as Record<string, unknown>, method);
        if (reason !== undefined) {
          blockers.push({ entity: meta.className, id: keys.toJson(keys.ofEntity(entity)), path: node.path, reason });
        }
      }
    };
    if (node.hops.length === 0 && roots.entities) {
      for (const entity of roots.entities) {
        // A reference removed without being loaded holds its key only: its validators read the row.
        const loaded = helper(entity).__initialized ? entity : await this.loadRow(em, entity);
        if (loaded) {
          await check(loaded);
        }
      }
      return blockers;
    }
    const under = rowsUnder(em, node.meta, node.hops, roots.ids);
    const keys = keysOf(under.table, under.from, under.where);
    const pks = node.meta.primaryKeys;
    const keyProperty = pks.length === 1 ? pks[0]! : Utils.getPrimaryKeyHash(pks);
    // Composite keys are loaded in one page: the budget bounds it.
    const page = pks.length === 1 ? this.options.batchSize : budget.left + 1;
    let cursor: unknown;
    for (;;) {
      const fork = em.fork({ clear: true, keepTransactionContext: true });
      const where: Record<string, unknown> = { [keyProperty]: { $in: raw(keys.sql, [...keys.params]) } };
      if (cursor !== undefined) {
        where[`$and`] = [{ [pks[0]!]: { $gt: cursor } }];
      }
      const rows = await fork.find(node.meta.class as new () => Record<string, unknown>, where as FilterQuery<Record<string, unknown>>, {
        orderBy: Object.fromEntries(pks.map((pk) => [pk, QueryOrder.ASC])) as QueryOrderMap<Record<string, unknown>>,
        limit: Math.min(page, budget.left + 1),
        filters: false,
      });
      if (rows.length > budget.left) {
        throw DeletionValidationBudgetError.create(node.meta.className, node.path, this.options.validation.maxInstances);
      }
      budget.left -= rows.length;
      for (const row of rows) {
        await check(row);
      }
      if (rows.length < page || pks.length > 1) {
        return blockers;
      }
      cursor = EntityKeys.of(node.meta).ofEntity(rows.at(-1)!);
    }
  }
}

/**
 * A validator refuses by returning a non-empty reason or by throwing anything at all: a throw
 * with no message still refuses, with a reason that says so. Fail closed.
 */
async function runValidator(entity: Record<string, unknown>, method: string): Promise<string | undefined> {
  try {
    const result = await (entity[method] as () => unknown).call(entity);
    return typeof result === 'string' && result.length > 0 ? result : undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return message.length > 0 ? message : `${method}() threw ${error instanceof Error ? error.name : JSON.stringify(error)} without a message`;
  }
}
