import {
  ChangeSetType,
  MikroORM,
  TransactionEventBroadcaster,
  Utils,
  type ChangeSet,
  type EntityManager,
  type EventArgs,
  type EntityMetadata,
  type EventSubscriber,
  type FlushEventArgs,
  type TransactionEventArgs,
  type Transaction,
} from '@mikro-orm/core';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DeletionConfigurationError } from '../errors/deletion-configuration.error.js';
import { DeletionTargetNotFoundError } from '../errors/deletion-target-not-found.error.js';
import { OutboxPublisher } from '../outbox/outbox-publisher.js';
import { PolicyRegistry, type EntityPolicy } from '../registry/policy-registry.js';
import { CascadeContext } from './cascade-context.js';
import { CascadeExecutor } from './cascade-executor.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { EntityTable } from '../sql/entity-table.js';
import { propertyOf } from '../sql/metadata.js';
import { keyToken, lockRows, rowClasses } from '../sql/row-statements.js';

const DELETES: readonly ChangeSetType[] = [ChangeSetType.DELETE, ChangeSetType.DELETE_EARLY];

/**
 * The MikroORM subscriber that applies policies when an entity with policies is removed and
 * flushed. It works in `beforeDelete` (or `beforeUpdate` for a tombstoned parent), inside the
 * flush's own transaction and before the parent's own statement, so children are handled first
 * and any failure rolls the whole flush back. After commit it hands new requests to the outbox.
 */
@Injectable()
export class DeletionSubscriber implements EventSubscriber, OnModuleInit {
  /**
   * Change sets whose policies already ran (handled with their whole group). Change sets are made
   * anew by every flush, so a flush retried after a rollback applies the policies again.
   */
  private readonly handled = new WeakSet<object>();
  /** Per entity manager starting a nested transaction, its outer transaction (see `beforeTransactionStart`). */
  private readonly outerOf = new WeakMap<object, object>();
  /** Change sets this flush turned from DELETE into a tombstone UPDATE. */
  private readonly tombstoned = new WeakSet<object>();
  /** Per entity manager, the removals its flush locks once MikroORM has begun the flush's transaction. */
  private readonly toLock = new WeakMap<object, ChangeSet<object>[]>();
  /** Removals whose rows this flush has locked before any hook ran. */
  private readonly locked = new WeakSet<object>();

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(CascadeExecutor) private readonly executor: CascadeExecutor,
    @Inject(OutboxPublisher) private readonly publisher: OutboxPublisher,
  ) {}

  /**
   * Registers with the ORM. A second `DeletionModule.forRoot()` on the same ORM would register a
   * second subscriber, and every policy would apply twice: the boot stops instead.
   */
  onModuleInit(): void {
    const events = this.orm.em.getEventManager();
    if ([...events.getSubscribers()].some((subscriber) => subscriber instanceof DeletionSubscriber && subscriber !== this)) {
      throw DeletionConfigurationError.create(
        'DELETION_CONFIG_DUPLICATE_MODULE',
        { option: 'DeletionModule' },
        'DeletionModule.forRoot() is imported twice for the same MikroORM instance, so every deletion policy would apply twice.',
        'import DeletionModule.forRoot() once, in the root module; feature modules inject DeletionService without importing it again.',
      );
    }
    events.registerSubscriber(this);
  }

  getSubscribedEntities() {
    // Entities with rules, and base classes whose subclasses have some (a row removed through a
    // reference of the base class may be a subclass's).
    return [...this.orm.getMetadata().getAll().values()].filter((meta) => this.registry.watches(meta)).map((meta) => meta.class);
  }

  async onFlush({ em, uow }: FlushEventArgs): Promise<void> {
    this.keepLoadedChildrenAttached(uow.getChangeSets());
    this.tombstoneRemovedParents(uow);
    this.toLock.delete(em);
    const removals = this.removalsToLock(uow.getChangeSets());
    if (removals.length === 0) {
      return;
    }
    if (em.isInTransaction()) {
      await this.lockRemovals(em, removals);
    } else {
      // The flush begins its own transaction next (implicit transactions are required at boot).
      this.toLock.set(em, removals);
    }
  }

  /**
   * A row a cascade removes through the ORM or walks from the queue (the child of a `destroy`,
   * `destroyAsync`, `nullifyThenPurge` or `deleteAllAsync` relation) may be removed by two deletions
   * at once: a flush removing it directly while a cascade (a queued batch, another request's
   * `destroy`) holds it. MikroORM would wait for the cascade, delete no row, and run the row's hooks
   * a second time. So those rows are locked at the start of the flush's transaction, before any
   * hook: the flush waits for the cascade, then finds the row gone and fails with
   * `DeletionTargetNotFoundError` (rolled back, no hook run), as `destroy()` does. Rows a cascade
   * removes are locked by the cascade itself, and `destroy()`'s target by `destroy()`; a parent
   * that is no relation's child is locked in its own `beforeDelete` (`lockParents`).
   */
  private removalsToLock(changeSets: ChangeSet<object>[]): ChangeSet<object>[] {
    if (CascadeContext.currentRequest()) {
      return [];
    }
    const lockedByDestroy = CascadeContext.currentDestroy()?.locked;
    return changeSets.filter(
      (cs) => (DELETES.includes(cs.type) || this.tombstoned.has(cs)) && cs.entity !== lockedByDestroy && this.registry.isPolicyChild(cs.meta),
    );
  }

  /**
   * Locks the rows of `removals`, one statement per table and class, tables in name order and keys
   * in key order (so two flushes cannot deadlock on each other); throws if any row is gone. `as`:
   * the policy whose class and tombstone the rows are checked as; by default, their change sets'.
   */
  private async lockRemovals(em: EntityManager, removals: ChangeSet<object>[], options: { ctx?: Transaction; as?: EntityPolicy } = {}): Promise<void> {
    const groups = new Map<string, { order: string; changeSets: ChangeSet<object>[] }>();
    for (const cs of removals) {
      // Per class too: single-table subclasses share a table, each with its own discriminator.
      const order = `${EntityTable.of(em, cs.meta, cs.schema).name} ${cs.meta.className}`;
      const group = groups.get(order) ?? { order, changeSets: [] };
      group.changeSets.push(cs);
      groups.set(order, group);
    }
    for (const { changeSets } of [...groups.values()].sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0))) {
      const { schema } = changeSets[0]!;
      const meta = options.as?.meta ?? changeSets[0]!.meta;
      const codec = EntityKeys.of(meta);
      const keys = changeSets.map((cs) => codec.ofEntity(cs.entity));
      const tombstone = options.as ? options.as.tombstone : this.registry.forMeta(meta)?.tombstone;
      const found = await lockRows(em, meta, keys, tombstone, { schema, ctx: options.ctx });
      // Compared by count: the database decides which rows a key names (a case-insensitive key, say).
      const wanted = new Set(keys.map((key) => keyToken(meta, key, em)));
      if (found.size < wanted.size) {
        const missing = keys.filter((key) => !found.has(keyToken(meta, key, em)));
        throw DeletionTargetNotFoundError.create(meta.className, missing.length === 1 ? missing[0] : missing);
      }
      changeSets.forEach((cs) => this.locked.add(cs));
    }
  }

  /**
   * `em.remove(parent)` detaches the children already loaded in a nullable one-to-many collection
   * (MikroORM nulls their foreign key in the same flush, before any delete). Under a policy other
   * than `nullify` that would hide them from it: they would be orphaned instead of destroyed,
   * deleted, counted by `restrict` or queued. Re-attach them; the policy decides their fate.
   */
  private keepLoadedChildrenAttached(changeSets: ChangeSet<object>[]): void {
    const deleted = new Set(changeSets.filter((cs) => DELETES.includes(cs.type)).map((cs) => cs.entity));
    const updates = new Map(changeSets.filter((cs) => cs.type === ChangeSetType.UPDATE).map((cs) => [cs.entity, cs]));
    for (const parent of changeSets.filter((cs) => DELETES.includes(cs.type))) {
      for (const relation of this.registry.forMeta(parent.meta)?.relations ?? []) {
        const collection = (parent.entity as Record<string, unknown>)[relation.relation];
        if (relation.kind !== '1:m' || relation.policy === 'nullify' || !Utils.isCollection(collection) || !collection.isInitialized()) {
          continue;
        }
        for (const child of collection.getItems(false) as Record<string, unknown>[]) {
          const update = updates.get(child);
          if (deleted.has(child) || !update || !(relation.childProperty in update.payload) || (update.payload as Record<string, unknown>)[relation.childProperty] != null) {
            continue;
          }
          child[relation.childProperty] = parent.entity;
          delete (update.payload as Record<string, unknown>)[relation.childProperty];
        }
      }
    }
  }

  /** Tombstone mode: a removed parent is marked instead of deleted; the queue deletes it last. */
  private tombstoneRemovedParents(uow: FlushEventArgs['uow']): void {
    const detachFrom = this.parentDeletedNow();
    for (const changeSet of uow.getChangeSets()) {
      const tombstone = DELETES.includes(changeSet.type) ? this.registry.forMeta(changeSet.meta)?.tombstone : undefined;
      if (tombstone !== undefined) {
        changeSet.type = ChangeSetType.UPDATE;
        (changeSet.entity as Record<string, unknown>)[tombstone] = new Date();
        if (detachFrom) {
          // Its parent's own DELETE comes in this transaction, before this row goes: let go of it.
          (changeSet.entity as Record<string, unknown>)[detachFrom] = null;
        }
        uow.recomputeSingleChangeSet(changeSet.entity);
        this.tombstoned.add(changeSet);
      }
    }
  }

  /**
   * A row marked (tombstone mode) while a synchronous `destroy` removes it stays until its own queued
   * work is done, but its parent is deleted now, in this transaction: a foreign key to the parent
   * would make the parent's DELETE fail. The marked row's foreign key is set to NULL with its mark
   * when it accepts NULL (the doctor reports the case where it does not). Returns that property.
   */
  private parentDeletedNow(): string | undefined {
    const relation = CascadeContext.currentRequest()?.destroying;
    if (!relation || this.registry.forMeta(relation.parentMeta)?.tombstone !== undefined) {
      return undefined;
    }
    const prop = propertyOf(relation.childMeta, relation.childProperty);
    return prop?.nullable ? relation.childProperty : undefined;
  }

  async beforeDelete(args: EventArgs<object>): Promise<void> {
    await this.applyToGroup(args, (cs) => DELETES.includes(cs.type));
  }

  async beforeUpdate(args: EventArgs<object>): Promise<void> {
    if (args.changeSet && this.tombstoned.has(args.changeSet)) {
      await this.applyToGroup(args, (cs) => this.tombstoned.has(cs));
    }
  }

  /**
   * A nested transaction (a savepoint) starts on the entity manager that received its outer
   * transaction here: remembered so the savepoint's requests join the outer transaction's.
   */
  beforeTransactionStart(args: TransactionEventArgs): void {
    if (args.transaction) {
      this.outerOf.set(args.em, args.transaction);
    }
  }

  async afterTransactionStart(args: TransactionEventArgs): Promise<void> {
    const outer = this.outerOf.get(args.em);
    this.outerOf.delete(args.em);
    if (outer && args.transaction) {
      this.publisher.nested(args.transaction, outer);
    }
    const removals = this.toLock.get(args.em);
    this.toLock.delete(args.em);
    if (removals && args.transaction) {
      // Only this flush's own removals (a failed flush leaves none behind for a later transaction).
      const current = new Set(args.uow?.getChangeSets());
      try {
        await this.lockRemovals(args.em, removals.filter((cs) => current.has(cs)), { ctx: args.transaction });
      } catch (error) {
        // MikroORM rolls back what fails inside the transaction, not a failure of this event, which
        // comes first: roll it back here, as it would (with its events), or its connection is lost.
        await args.em.getConnection('write').rollback(args.transaction, new TransactionEventBroadcaster(args.em));
        throw error;
      }
    }
  }

  afterTransactionCommit(args: TransactionEventArgs): void {
    this.publisher.committed(args.transaction);
  }

  afterTransactionRollback(args: TransactionEventArgs): void {
    this.publisher.rolledBack(args.transaction);
  }

  /**
   * MikroORM calls the hook once per entity, all of a type before that type's statement. The first
   * call handles every entity of that type in the flush at once, so the policies' statements are
   * set-based over the group.
   */
  private async applyToGroup(args: EventArgs<object>, inGroup: (cs: ChangeSet<object>) => boolean): Promise<void> {
    if (!args.changeSet || this.handled.has(args.changeSet) || !this.registry.watches(args.meta)) {
      return;
    }
    const group = args.em
      .getUnitOfWork(false)
      .getChangeSets()
      .filter((cs) => inGroup(cs) && cs.meta.class === args.meta.class && !this.handled.has(cs));
    if (!group.includes(args.changeSet)) {
      group.push(args.changeSet);
    }
    for (const changeSet of group) {
      this.handled.add(changeSet);
    }
    for (const [policy, changeSets] of await this.byRealClass(args.em, args.meta, group)) {
      await this.apply(args, policy, changeSets);
    }
  }

  /**
   * The policy of each row's own class. A row removed through a reference of a base class
   * (`em.getReference(Pet, id)`) may be a subclass's row, whose own policies and validators apply:
   * when a subclass has rules of its own, the rows' discriminators say which.
   */
  private async byRealClass(em: EntityManager, meta: EntityMetadata, group: ChangeSet<object>[]): Promise<Map<EntityPolicy, ChangeSet<object>[]>> {
    const byPolicy = new Map<EntityPolicy, ChangeSet<object>[]>();
    const add = (policy: EntityPolicy | undefined, changeSet: ChangeSet<object>) => {
      if (policy) {
        byPolicy.set(policy, [...(byPolicy.get(policy) ?? []), changeSet]);
      }
    };
    if (this.registry.subclassesWithOwnRules(meta).length === 0) {
      group.forEach((changeSet) => add(this.registry.forMeta(meta), changeSet));
      return byPolicy;
    }
    const keys = EntityKeys.of(meta);
    const classes = await rowClasses(em, meta, group.map((changeSet) => keys.ofEntity(changeSet.entity)));
    for (const changeSet of group) {
      const real = classes.get(keyToken(meta, keys.ofEntity(changeSet.entity), em)) ?? meta;
      add(this.registry.forMeta(real) ?? this.registry.forMeta(meta), changeSet);
    }
    return byPolicy;
  }

  /**
   * A deletion's entry point (not reached through another cascade) first locks its parent rows,
   * then checks and applies (see `CascadeExecutor.applyChecked`); inside a cascade, applies.
   */
  private async apply(args: EventArgs<object>, policy: EntityPolicy, group: ChangeSet<object>[]): Promise<void> {
    const keys = EntityKeys.of(policy.meta);
    const ids = group.map((changeSet) => keys.ofEntity(changeSet.entity));
    if (CascadeContext.currentRequest()) {
      await this.executor.applyPolicies(args.em, policy, ids);
      return;
    }
    await this.lockParents(args.em, policy, group);
    await this.executor.applyChecked(args.em, policy, { meta: policy.meta, ids, entities: group.map((cs) => cs.entity) });
  }

  /**
   * Two flushes that both loaded the same parent would otherwise both apply its policies (two
   * requests, two cascades) while the second one's own DELETE or tombstone UPDATE silently affects
   * no row. Locking the group's rows makes the second wait for the first to commit and then find
   * them gone, deleted or tombstoned: it fails with a 404 and rolls back, as `destroy()` does.
   * The lock comes before the validators, so a row already gone is "not found" rather than
   * "blocked" by rows its first deletion is still removing, again as in `destroy()`, which locked
   * its target itself and is not locked twice. Key order, so overlapping groups cannot deadlock.
   */
  private async lockParents(em: EntityManager, policy: EntityPolicy, group: ChangeSet<object>[]): Promise<void> {
    const lockedByDestroy = CascadeContext.currentDestroy()?.locked;
    // As rows of the policy's class: a base-class reference may name a subclass's (tombstoned) row.
    await this.lockRemovals(em, group.filter((cs) => !this.locked.has(cs) && cs.entity !== lockedByDestroy), { as: policy });
  }
}
