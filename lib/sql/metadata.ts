import type { EntityMetadata, EntityProperty } from '@mikro-orm/core';

/** A property of `meta` by name (metadata is keyed by the entity's own property names). */
export function propertyOf(meta: EntityMetadata, name: string): EntityProperty | undefined {
  return (meta.properties as Record<string, EntityProperty | undefined>)[name];
}
