import { describe, expect, it } from '@jest/globals';
import { ASYNC_POLICIES, POLICY_NAMES, isPolicyName } from '../../lib/policies/policy-names.js';
import { POLICY_SEMANTICS, policiesWhere, semanticsOf } from '../../lib/policies/policy-semantics.js';

describe('policy names and their meaning', () => {
  it('lists the seven policies in the README order', () => {
    expect([...POLICY_NAMES]).toEqual(['destroy', 'deleteAll', 'nullify', 'restrict', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge']);
  });

  it('accepts exactly those names at runtime', () => {
    for (const name of POLICY_NAMES) {
      expect(isPolicyName(name)).toBe(true);
    }
    for (const value of ['Destroy', 'cascade', '', undefined, null, 1, {}]) {
      expect(isPolicyName(value)).toBe(false);
    }
  });

  it('gives every policy a meaning, and the exported async list is the queued ones of that table', () => {
    expect(Object.keys(POLICY_SEMANTICS).sort()).toEqual([...POLICY_NAMES].sort());
    expect(policiesWhere((s) => s.queued)).toEqual([...ASYNC_POLICIES]);
  });

  it('says which policies delete, recurse, detach, refuse, are set-based and run after the parent', () => {
    expect(policiesWhere((s) => s.deletes)).toEqual(['destroy', 'deleteAll', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge']);
    expect(policiesWhere((s) => s.recurses)).toEqual(['destroy', 'destroyAsync', 'nullifyThenPurge']);
    expect(policiesWhere((s) => s.detaches)).toEqual(['nullify', 'nullifyThenPurge']);
    expect(policiesWhere((s) => s.refuses)).toEqual(['restrict']);
    expect(policiesWhere((s) => s.setBased)).toEqual(['deleteAll', 'nullify', 'deleteAllAsync']);
    expect(policiesWhere((s) => s.deletedAfterParent)).toEqual(['destroyAsync', 'deleteAllAsync']);
    expect(policiesWhere((s) => s.compositeChildren)).toEqual(['deleteAll', 'nullify', 'restrict']);
    expect(policiesWhere((s) => s.manyToMany)).toEqual(['restrict']);
  });

  it('maps every policy to a synchronous one that ends in the same rows', () => {
    for (const name of POLICY_NAMES) {
      const sync = semanticsOf(name).synchronous;
      expect(semanticsOf(sync).queued).toBe(false);
      expect(semanticsOf(sync).deletes).toBe(semanticsOf(name).deletes);
    }
  });
});
