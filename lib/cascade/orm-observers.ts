import { Cascade, EventType, MikroORM, ReferenceKind, Utils, type EntityMetadata, type EntityProperty, type EventSubscriber } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { DELETION_SUBSCRIBER } from '../deletion.constants.js';

const FLUSH_EVENTS = [EventType.beforeFlush, EventType.onFlush, EventType.afterFlush] as const;
/** What removing a row through the ORM dispatches for it. */
export const DELETE_EVENTS = [EventType.beforeDelete, EventType.afterDelete] as const;
/** What updating a row through the ORM dispatches for it (a tombstone mark). */
export const UPDATE_EVENTS = [EventType.beforeUpdate, EventType.afterUpdate] as const;
/** What loading a row through the ORM dispatches for it. */
export const LOAD_EVENTS = [EventType.onInit, EventType.onLoad] as const;

/**
 * What removing a row through MikroORM does beyond its own statement, and who in the application
 * would see it: the test for the paths that remove rows with the module's own SQL instead of a
 * flush (the queue's pages, the lean request path). What depends on metadata only is decided once
 * per entity; subscribers are asked at each call (an application may register one after boot).
 */
@Injectable()
export class OrmObservers {
  private readonly reachByMeta = new WeakMap<EntityMetadata, boolean>();
  private ownSubscriber?: EventSubscriber;

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
  ) {}

  /**
   * Whether a flush removing a row of `meta` would change further rows: an ORM cascade
   * (`Cascade.REMOVE` / `Cascade.ALL`) or orphan removal on any of its properties.
   */
  cascadesFurther(meta: EntityMetadata): boolean {
    let reaches = this.reachByMeta.get(meta);
    if (reaches === undefined) {
      reaches = (meta.props as EntityProperty[]).some((prop) => prop.orphanRemoval || prop.cascade?.some((c) => c === Cascade.REMOVE || c === Cascade.ALL));
      this.reachByMeta.set(meta, reaches);
    }
    return reaches;
  }

  /** Whether `meta` owns a many-to-many relation (a flush may write its pivot rows). */
  ownsPivot(meta: EntityMetadata): boolean {
    return (meta.props as EntityProperty[]).some((prop) => prop.kind === ReferenceKind.MANY_TO_MANY && prop.owner);
  }

  /**
   * Whether an application subscriber listens to flushes (it would expect to see the removals in
   * one). The module's own subscriber does not count.
   */
  hasFlushListeners(): boolean {
    return this.applicationSubscribers().some((subscriber) => FLUSH_EVENTS.some((event) => event in subscriber));
  }

  /**
   * Whether rows of `meta` removed (or updated) through the ORM would run code of the application:
   * an entity hook of `meta` for one of `events`, or an application subscriber that listens to one
   * of them for `meta` (or for every entity), or to flushes.
   */
  observed(meta: EntityMetadata, events: readonly EventType[]): boolean {
    if (events.some((event) => (meta.hooks[event]?.length ?? 0) > 0)) {
      return true;
    }
    return this.applicationSubscribers().some((subscriber) => {
      if (FLUSH_EVENTS.some((event) => event in subscriber)) {
        return true;
      }
      if (!events.some((event) => event in subscriber)) {
        return false;
      }
      const entities = subscriber.getSubscribedEntities?.();
      // As MikroORM matches them (a class, a name or an EntitySchema); a base class counts too.
      return !entities || entities.length === 0 || entities.some((entity) => Utils.matchesEntity(entity, meta) || Utils.matchesEntity(entity, meta.root));
    });
  }

  /**
   * The ORM's global subscribers other than the module's own (a transaction's entity manager also
   * carries MikroORM's own handler that forgets deleted entities in the caller's context: the
   * module's own transactions have no caller to tell).
   */
  private applicationSubscribers(): EventSubscriber[] {
    // By token: importing the subscriber's class here would make an import cycle through the executor.
    this.ownSubscriber ??= this.moduleRef.get<EventSubscriber>(DELETION_SUBSCRIBER, { strict: false });
    return [...this.orm.em.getEventManager().getSubscribers()].filter((subscriber) => subscriber !== this.ownSubscriber);
  }
}
