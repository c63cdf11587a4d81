import { ChangeSetType, MikroORM, helper, type EventArgs, type EventSubscriber } from '@mikro-orm/core';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { CascadeExecutor } from './cascade-executor.js';

const DELETES: readonly ChangeSetType[] = [ChangeSetType.DELETE, ChangeSetType.DELETE_EARLY];

/**
 * The MikroORM subscriber that applies policies when an entity with policies is removed and
 * flushed. It runs in `beforeDelete`, inside the flush's own transaction and before the parent's
 * DELETE, so children are handled first and any failure rolls the whole flush back.
 */
@Injectable()
export class DeletionSubscriber implements EventSubscriber, OnModuleInit {
  /**
   * Change sets whose policies already ran (handled with their whole group). Change sets are made
   * anew by every flush, so a flush retried after a rollback applies the policies again.
   */
  private readonly handled = new WeakSet<object>();

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(CascadeExecutor) private readonly executor: CascadeExecutor,
  ) {}

  onModuleInit(): void {
    this.orm.em.getEventManager().registerSubscriber(this);
  }

  getSubscribedEntities() {
    // Subclasses inherit their root's policies; list them so MikroORM dispatches their events too.
    return [...this.orm.getMetadata().getAll().values()].filter((meta) => this.registry.has(meta)).map((meta) => meta.class);
  }

  /**
   * MikroORM calls this once per deleted entity, all of a type before that type's DELETE. The first
   * call handles every entity of that type in the flush at once, so the policies' statements are
   * set-based over the group.
   */
  async beforeDelete(args: EventArgs<object>): Promise<void> {
    const policy = this.registry.forMeta(args.meta);
    if (!policy || !args.changeSet || this.handled.has(args.changeSet)) {
      return;
    }
    const group = args.em
      .getUnitOfWork(false)
      .getChangeSets()
      .filter((cs) => DELETES.includes(cs.type) && this.registry.forMeta(cs.meta) === policy && !this.handled.has(cs));
    if (!group.includes(args.changeSet)) {
      group.push(args.changeSet);
    }
    for (const changeSet of group) {
      this.handled.add(changeSet);
    }
    const ids = group.map((changeSet) => helper(changeSet.entity).getPrimaryKey());
    await this.executor.applyPolicies(args.em, policy, ids);
  }
}
