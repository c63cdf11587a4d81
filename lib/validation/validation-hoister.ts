import { helper, raw, type EntityManager, type EntityMetadata } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { Inject, Injectable } from '@nestjs/common';
import type { SetValidatorOptions } from '../decorators/validate-before-destroy.decorator.js';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import { DeletionBlockedError, type DeletionBlocker } from '../errors/deletion-blocked.error.js';
import { DeletionRestrictedError } from '../errors/deletion-restricted.error.js';
import { DeletionValidationBudgetError } from '../errors/deletion-validation-budget.error.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { deletionTree, rowsUnder, type DeletionNode } from './deletion-tree.js';
import { KeptStatements, shapeOf, type SqlFragment } from './kept-statements.js';

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
}

/** A deletion's checks as a condition (see `ValidationHoister.guard`). */
export interface DeletionGuard extends SqlFragment {
  /** Runs the checks in full after the guarded insert was refused; throws with the blockers. */
  refused(): Promise<void>;
}

/**
 * Hoists child-side validations onto the parent: before a deletion writes anything, every
 * `@ValidateBeforeDestroy()` validator of every entity whose rows it would delete, at any depth, is
 * evaluated. Set-based validators cost one query per relation path; instance validators load the
 * affected rows in keyset pages, within `validation.maxInstances`.
 */
@Injectable()
export class ValidationHoister {
  private readonly statements = new KeptStatements();

  constructor(
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  /**
   * Throws `DeletionBlockedError` (or the budget error) when any validator refuses. `descend: false`
   * checks the rows themselves only (a set-based delete skips their own policies).
   */
  async assertDeletable(em: EntityManager, roots: DeletionRoots, { descend = true } = {}): Promise<void> {
    const tree = descend ? deletionTree(this.registry, roots.meta, roots.path) : deletionTree(this.registry, roots.meta, roots.path).slice(0, 1);
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
   * the full checks (and throws with the blockers). `undefined` when some check is not a statement
   * (instance validators) or the deletion is of too many rows at once: use `assertDeletable`.
   */
  guard(em: EntityManager, roots: DeletionRoots): DeletionGuard | undefined {
    if (!KeptStatements.keeps(roots.ids)) {
      return undefined;
    }
    const parts: SqlFragment[] = [];
    for (const node of deletionTree(this.registry, roots.meta, roots.path)) {
      const validators = node.deleted ? this.registry.forMeta(node.meta)?.validators : undefined;
      if (validators && validators.methods.length > 0) {
        return undefined;
      }
      for (const set of validators?.sets ?? []) {
        parts.push(this.statements.get(set, `exists:${shapeOf(node)}`, roots.ids, () => this.blockerExists(em, node, roots.ids, set.where)));
      }
      if (node.relation?.policy === 'restrict' && node.timing === 'later') {
        parts.push(this.statements.get(node.relation, `exists:${shapeOf(node)}`, roots.ids, () => this.blockerExists(em, node, roots.ids)));
      }
    }
    return {
      sql: parts.length === 0 ? 'true' : parts.map((part) => `not exists (${part.sql})`).join(' and '),
      params: parts.flatMap((part) => part.params),
      refused: () => this.assertDeletable(em, roots),
    };
  }

  /** `select 1` from the rows of `node` under `ids` that match `where`: one of them blocks. */
  private blockerExists(em: EntityManager, node: DeletionNode, ids: readonly unknown[], where?: object): SqlFragment {
    const qb = (em as SqlEntityManager)
      .createQueryBuilder(node.meta.class as new () => object, 'v')
      .select(raw('1') as never)
      .where((where ? { $and: [rowsUnder(node, ids), where] } : rowsUnder(node, ids)) as never)
      .setFlag('DISABLE_PAGINATE' as never);
    return { sql: qb.getQuery(), params: [...qb.getParams()] };
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
      const where = rowsUnder(node, roots.ids);
      const count = await em.count(node.meta.class, where, { filters: false });
      if (count > 0) {
        const sample = await em.find(node.meta.class as new () => Record<string, unknown>, where as never, {
          fields: [relation.childProperty] as never,
          limit: this.options.validation.maxBlockers,
          filters: false,
        });
        const parents = [...new Set(sample.map((row) => helper(row[relation.childProperty] as object).getPrimaryKey()))];
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

  /** Every validator's verdict over the given relation paths, without throwing on a refusal. */
  async evaluate(em: EntityManager, roots: DeletionRoots, nodes: readonly DeletionNode[]): Promise<ValidationVerdict> {
    const cap = this.options.validation.maxBlockers;
    const verdict: ValidationVerdict = { blockers: [], total: 0, byPath: new Map() };
    const budget = { left: this.options.validation.maxInstances };
    for (const node of nodes.filter((n) => n.deleted)) {
      const validators = this.registry.forMeta(node.meta)?.validators;
      if (!validators) {
        continue;
      }
      const found: DeletionBlocker[] = [];
      let total = 0;
      for (const set of validators.sets) {
        const result = await this.evaluateSet(em, node, roots.ids, set, cap);
        found.push(...result.blockers);
        total += result.total;
      }
      if (validators.methods.length > 0) {
        const result = await this.evaluateInstances(em, node, roots, validators.methods, budget);
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

  /** One statement: a sample of the matching rows with the total from a window count. */
  private async evaluateSet(em: EntityManager, node: DeletionNode, ids: readonly unknown[], set: SetValidatorOptions, cap: number) {
    const pk = node.meta.primaryKeys[0]!;
    const { sql, params } = this.statements.get(set, `sample:${shapeOf(node)}:${cap}`, ids, () => {
      const qb = (em as SqlEntityManager)
        .createQueryBuilder(node.meta.class as new () => object, 'v')
        .select([`v.${pk}`, raw('count(*) over() as blocked_total')] as never)
        .where({ $and: [rowsUnder(node, ids), set.where] } as never)
        .orderBy({ [pk]: 'asc' } as never)
        .limit(cap)
        .setFlag('DISABLE_PAGINATE' as never);
      return { sql: qb.getQuery(), params: [...qb.getParams()] };
    });
    const rows: Record<string, unknown>[] = await em.getConnection().execute(sql, params, 'all', em.getTransactionContext());
    const idField = (node.meta.properties[pk as never] as { fieldNames: string[] }).fieldNames[0]!;
    return {
      total: Number(rows[0]?.blocked_total ?? 0),
      blockers: rows.map((row) => ({ entity: node.meta.className, id: row[idField] ?? row[pk], path: node.path, reason: set.message })),
    };
  }

  private async evaluateInstances(
    em: EntityManager,
    node: DeletionNode,
    roots: DeletionRoots,
    methods: readonly string[],
    budget: { left: number },
  ): Promise<DeletionBlocker[]> {
    const blockers: DeletionBlocker[] = [];
    const check = async (entity: Record<string, unknown>) => {
      for (const method of methods) {
        const reason = await runValidator(entity, method);
        if (reason) {
          blockers.push({ entity: node.meta.className, id: entity[node.meta.primaryKeys[0]!], path: node.path, reason });
        }
      }
    };
    if (node.chain.length === 0 && roots.entities) {
      for (const entity of roots.entities) {
        await check(entity as Record<string, unknown>);
      }
      return blockers;
    }
    const pk = node.meta.primaryKeys[0]!;
    const page = this.options.batchSize;
    let cursor: unknown;
    for (;;) {
      const fork = em.fork({ clear: true, keepTransactionContext: true });
      const where = cursor === undefined ? rowsUnder(node, roots.ids) : { $and: [rowsUnder(node, roots.ids), { [pk]: { $gt: cursor } }] };
      const rows = await fork.find(node.meta.class as new () => Record<string, unknown>, where as never, {
        orderBy: { [pk]: 'asc' } as never,
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
      if (rows.length < page) {
        return blockers;
      }
      cursor = rows.at(-1)![pk];
    }
  }
}

/** A validator refuses by returning a non-empty reason or by throwing (its message is the reason). */
async function runValidator(entity: Record<string, unknown>, method: string): Promise<string | undefined> {
  try {
    const result = await (entity[method] as () => unknown).call(entity);
    return typeof result === 'string' && result.length > 0 ? result : undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
