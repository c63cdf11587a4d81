import { BigIntType, EntitySchema } from '@mikro-orm/core';

/**
 * A child row that a `nullifyThenPurge` policy detached from its parent, recorded in the same
 * statement as the UPDATE that detached it, so the queue later destroys exactly these rows.
 */
export class DeletionOrphan {
  id!: string;
  requestId!: string;
  relation!: string;
  rowId!: string;
}

export const DeletionOrphanSchema = new EntitySchema<DeletionOrphan>({
  class: DeletionOrphan,
  tableName: 'deletion_orphan',
  indexes: [{ properties: ['requestId', 'relation', 'id'] }],
  properties: {
    id: { type: new BigIntType('string'), primary: true, autoincrement: true },
    requestId: { type: 'uuid' },
    relation: { type: 'text' },
    rowId: { type: 'text' },
  },
});
